//! The recorder's own OS thread, at a lower CPU priority than the serving threads, that writes
//! each batch into SQLite.
//!
//! Why a thread of its own: SQLite's insert is the one part of recording that costs real CPU
//! (about a microsecond per event), and on a busy machine every microsecond it takes at equal
//! priority is one the serving threads wait for. At a lower priority the scheduler runs it in the
//! gaps the serving threads leave and preempts it when they need the core, while its weight still
//! guarantees it a share (at nice +10, about a tenth of a busy thread's) well above the few percent
//! of a core it needs, so batches are not starved into drops. tokio's blocking pool could not be used for this:
//! its threads also resolve files for requests, and an unprivileged thread cannot raise its priority
//! back after lowering it.
//!
//! Linux keeps the nice value per thread; on other systems the thread runs at normal priority.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;

use pushwise_store::{Event, Store};
use tokio::sync::oneshot;

/// What became of a batch handed to [`BatchThread::write`].
#[derive(Debug)]
pub(crate) enum Written {
    /// The database took the batch (`Ok`: rows inserted) or refused it (`Err`). The batch comes
    /// back emptied (capacity kept) when written, untouched when refused, so it can be retried.
    Done(Vec<Event>, Result<u64, pushwise_store::Error>),
    /// The insert panicked (a bug). The batch comes back but must not be retried; the thread has
    /// already replaced its writer with a fresh one.
    Panicked(Vec<Event>, String),
    /// The thread is gone; the batch went with it.
    Gone,
}

/// One batch on its way to the thread, with where to send the outcome.
struct Job {
    batch: Vec<Event>,
    reply: oneshot::Sender<Written>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("events", &self.batch.len())
            .finish()
    }
}

/// The handle the recorder's writer task holds.
#[derive(Debug)]
pub(crate) struct BatchThread {
    jobs: Option<std_mpsc::Sender<Job>>,
    handle: Option<JoinHandle<()>>,
}

impl BatchThread {
    /// Starts the thread, `nice` steps below the priority of the thread that calls this.
    pub(crate) fn start(store: Store, nice: u8) -> std::io::Result<BatchThread> {
        let (jobs, rx) = std_mpsc::channel::<Job>();
        let base = current_nice();
        let handle = std::thread::Builder::new()
            .name("pushwise-recorder".into())
            .spawn(move || {
                if nice > 0
                    && let Err(e) = lower_priority(base, nice)
                {
                    tracing::warn!(error = %e, nice, "recorder: cannot lower the writer thread's priority; it runs at the serving threads' priority");
                }
                run(&store, &rx);
            })?;
        Ok(BatchThread {
            jobs: Some(jobs),
            handle: Some(handle),
        })
    }

    /// Writes `batch` on the thread and waits (asynchronously) for the outcome.
    pub(crate) async fn write(&self, batch: Vec<Event>) -> Written {
        let (reply, outcome) = oneshot::channel();
        let Some(jobs) = &self.jobs else {
            return Written::Gone;
        };
        if jobs.send(Job { batch, reply }).is_err() {
            return Written::Gone;
        }
        outcome.await.unwrap_or(Written::Gone)
    }

    /// Lets the thread finish (every batch handed to it has been answered already) and waits for
    /// it on the blocking pool, so its SQLite connection is closed before the process exits.
    pub(crate) async fn close(mut self) {
        drop(self.jobs.take());
        if let Some(handle) = self.handle.take() {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }
}

fn run(store: &Store, jobs: &std_mpsc::Receiver<Job>) {
    let mut writer = store.event_writer();
    for Job { mut batch, reply } in jobs {
        let outcome = match std::panic::catch_unwind(AssertUnwindSafe(|| writer.insert(&batch))) {
            Ok(result) => {
                if result.is_ok() {
                    batch.clear();
                }
                Written::Done(batch, result)
            }
            Err(panic) => {
                // The writer may be mid-statement: start over with a fresh one.
                writer = store.event_writer();
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_string());
                Written::Panicked(batch, msg)
            }
        };
        // The writer task may be gone (runtime shutting down): nothing left to tell.
        let _ = reply.send(outcome);
    }
}

#[cfg(target_os = "linux")]
fn current_nice() -> i32 {
    rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap_or(0)
}

/// Lowers the calling thread's priority to `base + nice` (at most 19, the lowest).
#[cfg(target_os = "linux")]
fn lower_priority(base: i32, nice: u8) -> std::io::Result<()> {
    // On Linux, PRIO_PROCESS with a thread id changes that thread only.
    let target = (base + i32::from(nice)).min(19);
    rustix::process::setpriority_process(Some(rustix::thread::gettid()), target)?;
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn current_nice() -> i32 {
    0
}

#[cfg(not(target_os = "linux"))]
fn lower_priority(_base: i32, _nice: u8) -> std::io::Result<()> {
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_writer_thread_runs_at_a_lower_priority_than_its_starter() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).await.unwrap();
        let base = current_nice();
        let thread = BatchThread::start(store, 5).unwrap();
        // The thread is named: find it among this process's threads and read its nice value.
        // (Other tests' recorder threads run at the default +10, never at +5.)
        let want = (base + 5).min(19);
        let mut seen = Vec::new();
        for _ in 0..200 {
            seen = recorder_thread_nice_values();
            if seen.contains(&want) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(
            seen.contains(&want),
            "recorder threads' nice values: {seen:?}, want {want}"
        );
        thread.close().await;
    }

    fn recorder_thread_nice_values() -> Vec<i32> {
        let mut nice = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let dir = task.unwrap().path();
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            // Thread names are cut to 15 bytes: "pushwise-recorder" reads "pushwise-record".
            if comm.trim() != "pushwise-record" {
                continue;
            }
            let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
                continue;
            };
            // The nice value is field 19 of /proc/PID/stat: the 17th after the command name.
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .unwrap()
                .1
                .split_whitespace()
                .collect();
            nice.push(fields[16].parse().unwrap());
        }
        nice
    }
}
