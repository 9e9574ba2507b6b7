//! The recorder: request handlers hand events to a bounded channel without waiting; one writer task
//! drains it into SQLite in batches, each written on the recorder's own low-priority thread.
//!
//! Why this shape: the request path must never await SQLite. A full channel drops the event and
//! counts the drop; a failing database keeps the batch, retries with backoff and logs once per
//! interval, while the server keeps answering.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pushwise_store::{Event, Store};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::batch_thread::{BatchThread, Written};
use crate::metrics::{Limit, Metrics};

/// Recorder tuning.
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    /// Events queued for the writer before new ones are dropped (and counted).
    pub queue: NonZeroUsize,
    /// Memory the events waiting to be written may hold, queued or kept for a retry (see
    /// [`Event::memory_bytes`]); beyond it new events are dropped and counted. The count limits
    /// alone would let long paths and Referers pin gigabytes.
    pub max_bytes: usize,
    /// Most events per database write.
    pub batch: NonZeroUsize,
    /// Longest an event waits before its batch is written (never zero: see [`RecorderConfig::new`]).
    pub interval: Duration,
    /// Events kept in memory while the database refuses writes, beyond which the oldest are lost.
    pub max_pending: usize,
    /// How many nice steps below the serving threads the SQLite writes run (0 = same priority).
    pub nice: u8,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        RecorderConfig {
            queue: NonZeroUsize::new(65_536).expect("not zero"),
            max_bytes: 64 * 1024 * 1024,
            batch: NonZeroUsize::new(2_000).expect("not zero"),
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
    /// Bytes held by events not yet written or given up (see [`RecorderConfig::max_bytes`]).
    held: Arc<Held>,
}

/// The recorder's memory account, shared by the handlers (who add) and the writer (who releases).
#[derive(Debug)]
struct Held {
    bytes: AtomicUsize,
    max: usize,
}

impl Held {
    /// Reserves `n` bytes; false (and nothing reserved) when that would pass the maximum.
    fn reserve(&self, n: usize) -> bool {
        let before = self.bytes.fetch_add(n, Ordering::Relaxed);
        if before + n > self.max {
            self.bytes.fetch_sub(n, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn release(&self, n: usize) {
        self.bytes.fetch_sub(n, Ordering::Relaxed);
    }
}

fn bytes_of(events: &[Event]) -> usize {
    events.iter().map(Event::memory_bytes).sum()
}

impl Recorder {
    /// Starts the writer task and its thread. Call [`RecorderTask::drain`] at shutdown to write
    /// what is queued. Fails only when the OS refuses a new thread.
    pub fn start(
        store: Store,
        cfg: RecorderConfig,
        metrics: Arc<Metrics>,
    ) -> Result<(Recorder, RecorderTask), crate::error::Error> {
        let thread = BatchThread::start(store, cfg.nice)?;
        let queue = cfg.queue.get();
        let (tx, rx) = mpsc::channel(queue);
        let stop = CancellationToken::new();
        let half_full = Arc::new(Notify::new());
        let held = Arc::new(Held {
            bytes: AtomicUsize::new(0),
            max: cfg.max_bytes,
        });
        let join = tokio::spawn(writer(
            thread,
            rx,
            cfg,
            Arc::clone(&metrics),
            Arc::clone(&half_full),
            Arc::clone(&held),
            stop.clone(),
        ));
        let rec = Recorder {
            tx,
            metrics,
            half_full,
            wake_below: queue / 2,
            held,
        };
        Ok((rec, RecorderTask { join, stop }))
    }

    /// Queues an event; drops and counts it when the queue is full, by count or by bytes. Never
    /// waits.
    pub fn record(&self, e: Event) {
        let n = e.memory_bytes();
        if !self.held.reserve(n) {
            self.metrics.recorder_dropped.inc();
            self.metrics.limit(Limit::recorder_bytes);
            return;
        }
        // The queue-depth gauge is sampled by the writer: no shared counter on the request path.
        if self.tx.try_send(e).is_err() {
            self.held.release(n);
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
    held: Arc<Held>,
    stop: CancellationToken,
) {
    let mut w = Writer {
        pending: Vec::with_capacity(cfg.batch.get()),
        held,
        backoff: cfg.interval,
        cfg,
        rx,
        metrics,
        half_full,
        stop,
        closed: false,
        last_error_log: None,
        failures_since_log: 0,
        shutdown_failures: 0,
    };
    w.write_batches(&thread).await;
    thread.close().await;
}

/// The writer task's state: the batch being filled or retried, and how the last writes went.
struct Writer {
    rx: mpsc::Receiver<Event>,
    cfg: RecorderConfig,
    metrics: Arc<Metrics>,
    half_full: Arc<Notify>,
    held: Arc<Held>,
    stop: CancellationToken,
    pending: Vec<Event>,
    /// The channel is closed and empty: write what is pending, then stop.
    closed: bool,
    backoff: Duration,
    last_error_log: Option<tokio::time::Instant>,
    failures_since_log: u64,
    shutdown_failures: u32,
}

/// What to do after a batch was handed to the thread.
enum Next {
    Continue,
    Stop,
}

impl Writer {
    async fn write_batches(&mut self, thread: &BatchThread) {
        loop {
            if !self.closed && self.pending.is_empty() {
                self.wait_for_batch().await;
            }
            if !self.closed {
                self.closed =
                    take_queued(&mut self.rx, &mut self.pending, self.cfg.batch.get()).is_err();
            }
            self.metrics.recorder_queue_depth.set(self.rx.len() as i64);
            if self.pending.is_empty() {
                if self.closed {
                    return;
                }
                continue;
            }
            if let Next::Stop = self.write_pending(thread).await {
                return;
            }
        }
    }

    /// Waits for the first event of a batch (one wake-up per batch, not one per event), then lets
    /// the batch fill for one interval, unless it is full already (`recv_many` took all that was
    /// queued) or we are stopping. While the writer sleeps no waker is registered, so handlers'
    /// sends stay cheap.
    async fn wait_for_batch(&mut self) {
        tokio::select! {
            biased;
            got = self.rx.recv_many(&mut self.pending, self.cfg.batch.get()) => self.closed = got == 0,
            _ = self.stop.cancelled(), if !self.rx.is_closed() => self.rx.close(),
        }
        if !self.closed && !self.rx.is_closed() && self.pending.len() < self.cfg.batch.get() {
            tokio::select! {
                _ = tokio::time::sleep(self.cfg.interval) => {}
                _ = self.half_full.notified() => {}
                _ = self.stop.cancelled(), if !self.rx.is_closed() => self.rx.close(),
            }
        }
    }

    /// Hands the pending batch to the recorder's thread and deals with the outcome.
    async fn write_pending(&mut self, thread: &BatchThread) -> Next {
        let n = self.pending.len();
        let bytes = bytes_of(&self.pending);
        // The insert blocks (SQLite): it runs on the recorder's own thread, never on a thread
        // that serves requests, and the batch's strings are freed there too.
        match thread.write(std::mem::take(&mut self.pending)).await {
            Written::Done(batch, result) => {
                self.pending = batch;
                match result {
                    Ok(_) => {
                        self.held.release(bytes);
                        self.written(n);
                        Next::Continue
                    }
                    Err(e) => self.failed(&e).await,
                }
            }
            Written::Panicked(mut batch, panic) => {
                // A bug in binding the batch: retrying it would panic again.
                tracing::error!(panic, lost = n, "recorder: the batch writer panicked");
                self.metrics.recorder_dropped.inc_by(n as u64);
                self.held.release(bytes);
                batch.clear();
                self.pending = batch;
                Next::Continue
            }
            Written::Gone => {
                tracing::error!(
                    lost = n,
                    "recorder: the writer thread is gone; recording stops"
                );
                self.metrics.recorder_dropped.inc_by(n as u64);
                self.held.release(bytes);
                self.drop_until_closed().await;
                Next::Stop
            }
        }
    }

    fn written(&mut self, n: usize) {
        self.metrics.recorder_written.inc_by(n as u64);
        self.backoff = self.cfg.interval;
        if self.failures_since_log > 0 {
            tracing::info!(
                failed_batches = self.failures_since_log,
                "recorder: database writable again"
            );
            self.failures_since_log = 0;
            self.last_error_log = None;
        }
    }

    /// The database refused the batch: keep it (up to `max_pending`), keep draining the channel
    /// while backing off, and at shutdown give up after a few quick retries.
    async fn failed(&mut self, e: &pushwise_store::Error) -> Next {
        self.metrics.recorder_failed_batches.inc();
        self.failures_since_log += 1;
        let now = tokio::time::Instant::now();
        if self
            .last_error_log
            .is_none_or(|t| now - t >= Duration::from_secs(10))
        {
            tracing::error!(error = %e, pending = self.pending.len(), failed_batches = self.failures_since_log,
                "recorder: cannot write to the database; keeping events and retrying");
            self.last_error_log = Some(now);
        }
        if self.pending.len() > self.cfg.max_pending {
            let lose = self.pending.len() - self.cfg.max_pending;
            self.held.release(bytes_of(&self.pending[..lose]));
            self.pending.drain(..lose);
            self.metrics.recorder_dropped.inc_by(lose as u64);
        }
        self.drain_while_backing_off().await;
        self.backoff = (self.backoff * 2).min(Duration::from_secs(5));
        if self.closed {
            // Shutting down: a few quick retries (a lock may clear), then give up loudly
            // rather than hold the process hostage to a database that refuses writes.
            self.backoff = self.backoff.min(Duration::from_millis(500));
            self.shutdown_failures += 1;
        }
        if self.shutdown_failures > 3 {
            tracing::error!(
                lost = self.pending.len(),
                "recorder: giving up on the database at shutdown"
            );
            self.metrics
                .recorder_dropped
                .inc_by(self.pending.len() as u64);
            self.held.release(bytes_of(&self.pending));
            return Next::Stop;
        }
        Next::Continue
    }

    /// Keeps draining the channel while waiting out the backoff, so handlers see room as long as
    /// memory allows.
    async fn drain_while_backing_off(&mut self) {
        let sleep = tokio::time::sleep(self.backoff);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                got = self.rx.recv(), if !self.closed => match got {
                    Some(e) => self.pending.push(e),
                    None => self.closed = true,
                },
                _ = &mut sleep => break,
                _ = self.stop.cancelled(), if !self.rx.is_closed() => self.rx.close(),
            }
        }
    }

    /// The thread is gone: count what is queued and what arrives until shutdown as dropped.
    async fn drop_until_closed(&mut self) {
        loop {
            tokio::select! {
                got = self.rx.recv() => match got {
                    Some(e) => {
                        self.held.release(e.memory_bytes());
                        self.metrics.recorder_dropped.inc();
                    }
                    None => return,
                },
                _ = self.stop.cancelled(), if !self.rx.is_closed() => self.rx.close(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pushwise_store::{PushMark, Referer};

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
            over_cap: false,
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
            queue: NonZeroUsize::new(1_000).unwrap(),
            batch: NonZeroUsize::new(100).unwrap(),
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

    #[tokio::test]
    async fn events_holding_more_than_max_bytes_are_dropped_and_the_budget_comes_back_once_written()
    {
        let cfg = RecorderConfig {
            interval: Duration::from_millis(50),
            batch: NonZeroUsize::new(10_000).unwrap(),
            max_bytes: 1024 * 1024,
            ..Default::default()
        };
        let (_dir, store, metrics, rec, task) = start(cfg).await;
        let long = |i: i64| {
            let mut e = event(i);
            e.path = format!("/{i}/{}", "x".repeat(64 * 1024)).into();
            e
        };
        let each = long(0).memory_bytes();
        // A current-thread runtime: the writer cannot run before this loop ends, so every event
        // is still held and the count limit (65,536) is far away.
        for i in 0..100 {
            rec.record(long(i));
        }
        let fits = (1024 * 1024) / each;
        assert!(fits < 100);
        assert_eq!(metrics.recorder_dropped.get(), (100 - fits) as u64);
        assert!(rec.held.bytes.load(Ordering::Relaxed) <= 1024 * 1024);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while metrics.recorder_written.get() < fits as u64 && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            rec.held.bytes.load(Ordering::Relaxed),
            0,
            "written events release their bytes"
        );
        for i in 100..110 {
            rec.record(long(i));
        }
        assert_eq!(metrics.recorder_dropped.get(), (100 - fits) as u64);
        drop(rec);
        task.drain().await;
        assert_eq!(store.count_events().await.unwrap(), fits as i64 + 10);
    }
}
