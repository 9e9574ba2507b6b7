//! Connection workers: one thread per core, each running a single-threaded runtime that serves
//! the connections handed to it, start to finish.
//!
//! Why: a connection's work is one task (its streams run on it, see `h2conn`), so nothing is
//! gained by moving it between threads, and tokio's work-stealing scheduler pays for the option:
//! a woken task may run on another core than the one its data is hot on, and an idle worker is
//! unparked to go looking for work. A worker that owns its connections only ever wakes itself.
//! Measured on 2 cores, alternating binaries under h2load: +4–5% requests per second on both the
//! 10 KB page and the 1 KB asset (BENCHMARKS.md). The kernel's switch and wake-up paths stayed
//! ~10% of the profile: that is the workers sleeping in `epoll_wait` between the client's bursts
//! (h2load shares the two cores), which no scheduler of ours removes.
//!
//! The accept loop stays on the main runtime and hands each accepted socket to the next worker in
//! turn. What lives longer than a connection (the recorder, reloads, the metrics listener, the
//! analyzer) stays on the main runtime too; the channels between them work across runtimes.
//!
//! Invariants: a worker's runtime is dropped (cancelling what still runs on it) only after the
//! accept loop's grace period is over; a connection's task never leaves the worker it started on.

use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

/// The running workers.
pub(crate) struct Workers {
    handles: Vec<Handle>,
    threads: Vec<JoinHandle<()>>,
    stop: CancellationToken,
    next: AtomicUsize,
}

impl Workers {
    /// Starts `n` worker threads, each with its runtime (I/O and timers enabled).
    pub(crate) fn start(n: NonZeroUsize) -> std::io::Result<Workers> {
        let stop = CancellationToken::new();
        let mut workers = Workers {
            handles: Vec::with_capacity(n.get()),
            threads: Vec::with_capacity(n.get()),
            stop: stop.clone(),
            next: AtomicUsize::new(0),
        };
        for i in 0..n.get() {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = rt.handle().clone();
            let stop = stop.clone();
            // On failure, `workers` drops here and stops the threads already started.
            let thread = std::thread::Builder::new()
                .name(format!("pushwise-worker-{i}"))
                .spawn(move || rt.block_on(stop.cancelled()))?;
            workers.handles.push(handle);
            workers.threads.push(thread);
        }
        Ok(workers)
    }

    /// How many workers run.
    pub(crate) fn len(&self) -> usize {
        self.handles.len()
    }

    /// Runs `task` on the next worker in turn.
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[i].spawn(task);
    }

    /// Stops every worker and waits for its thread: what still runs on a worker is cancelled.
    pub(crate) async fn stop(mut self) {
        self.stop.cancel();
        let threads = std::mem::take(&mut self.threads);
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // A server dropped without `stop` (an error before serving) must not leave threads behind.
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn tasks_are_spread_over_every_worker_thread_in_turn() {
        let w = Workers::start(NonZeroUsize::new(3).unwrap()).unwrap();
        let names = Arc::new(Mutex::new(Vec::new()));
        let (tx, mut rx) = tokio::sync::mpsc::channel(6);
        for _ in 0..6 {
            let (names, tx) = (Arc::clone(&names), tx.clone());
            w.spawn(async move {
                let name = std::thread::current().name().unwrap_or("").to_string();
                names.lock().unwrap().push(name);
                tx.send(()).await.unwrap();
            });
        }
        for _ in 0..6 {
            rx.recv().await.unwrap();
        }
        let names = names.lock().unwrap().clone();
        let distinct: HashSet<&String> = names.iter().collect();
        assert_eq!(distinct.len(), 3, "{names:?}");
        assert!(names.iter().all(|n| n.starts_with("pushwise-worker-")));
        w.stop().await;
    }

    #[tokio::test]
    async fn stopping_cancels_what_still_runs_and_ends_the_threads() {
        let w = Workers::start(NonZeroUsize::new(2).unwrap()).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        // A task that never finishes: holding `tx` until it is dropped with its runtime.
        w.spawn(async move {
            let _tx = tx;
            std::future::pending::<()>().await;
        });
        w.stop().await;
        // The task was dropped with its runtime, so its sender is gone.
        assert!(rx.await.is_err());
    }
}
