//! The access log: one plain combined-format line per response, written by a thread of its own.
//!
//! Why a thread and a bounded queue: the request path never waits on a file (a slow disk or a
//! stalled pipe on stdout must not slow responses), the same rule as the recorder's. A full queue
//! drops the line and counts it (`pushwise_access_log_dropped_total`). Lines carry no tracing
//! prefix and no colour, so the file is re-importable with `pushwise import` as it is.

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;

use crate::error::Error;

/// Lines queued for the writer before new ones are dropped.
const QUEUE: usize = 16 * 1024;

/// Where access-log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    /// Standard output (`--access-log -`).
    Stdout,
    /// A file, created 0600 if missing and appended to.
    File(PathBuf),
}

impl AccessLogTarget {
    /// `-` is standard output; anything else a file path.
    pub fn parse(s: &str) -> AccessLogTarget {
        if s == "-" {
            AccessLogTarget::Stdout
        } else {
            AccessLogTarget::File(PathBuf::from(s))
        }
    }
}

enum Msg {
    Line(String),
    /// Everything sent before this is written and flushed when the reply arrives.
    Sync(SyncSender<()>),
}

/// The sending side, shared by every connection.
pub struct AccessLog {
    tx: SyncSender<Msg>,
    dropped: Counter,
}

impl AccessLog {
    /// Opens the target (appending) and starts the writer thread.
    pub fn start(target: &AccessLogTarget, dropped: Counter) -> Result<AccessLog, Error> {
        let out: Box<dyn Write + Send> = match target {
            AccessLogTarget::Stdout => Box::new(std::io::stdout()),
            AccessLogTarget::File(p) => Box::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(p)
                    .map_err(|e| Error::config(format!("--access-log {}: {e}", p.display())))?,
            ),
        };
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("pushwise-access-log".into())
            .spawn(move || write_lines(rx, BufWriter::with_capacity(64 * 1024, out)))
            .map_err(|e| Error::config(format!("cannot start the access-log thread: {e}")))?;
        Ok(AccessLog { tx, dropped })
    }

    /// Queues one line (without its newline); drops and counts it when the queue is full.
    pub fn log(&self, line: String) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.tx.try_send(Msg::Line(line))
        {
            self.dropped.inc();
        }
    }

    /// Waits (at most `timeout`) until every line queued so far is written and flushed: called at
    /// shutdown, so a clean exit loses no line.
    pub fn sync(&self, timeout: Duration) {
        let (done_tx, done_rx) = sync_channel(1);
        if self.tx.send(Msg::Sync(done_tx)).is_ok() {
            let _ = done_rx.recv_timeout(timeout);
        }
    }
}

/// The writer thread: writes lines as they come and flushes whenever the queue runs empty (so a
/// `tail -f` sees each burst at once without a write per line), or at least every 200 ms.
fn write_lines(rx: Receiver<Msg>, mut out: BufWriter<Box<dyn Write + Send>>) {
    let mut failed = false;
    loop {
        let msg = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => {
                let _ = out.flush();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut next = Some(msg);
        while let Some(m) = next.take() {
            match m {
                Msg::Line(l) => {
                    if let Err(e) = writeln!(out, "{l}")
                        && !failed
                    {
                        // Said once: a full disk would otherwise log a warning per request.
                        failed = true;
                        tracing::warn!(error = %e, "cannot write the access log; lines are lost until it can be written");
                    }
                }
                Msg::Sync(done) => {
                    let _ = out.flush();
                    let _ = done.send(());
                }
            }
            next = rx.try_recv().ok();
        }
        if out.flush().is_ok() {
            failed = false;
        }
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_logged_before_sync_is_in_the_file_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log =
            AccessLog::start(&AccessLogTarget::File(path.clone()), Counter::default()).unwrap();
        for i in 0..1000 {
            log.log(format!("line {i}"));
        }
        log.sync(Duration::from_secs(5));
        let text = std::fs::read_to_string(&path).unwrap();
        let want: Vec<String> = (0..1000).map(|i| format!("line {i}")).collect();
        assert_eq!(text.lines().collect::<Vec<_>>(), want);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "client keys are private to the owner");
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        // A writer that never finishes its first write: the queue fills and stays full.
        struct Stuck;
        impl Write for Stuck {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                std::thread::sleep(Duration::from_secs(3600));
                Ok(0)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::spawn(move || write_lines(rx, BufWriter::with_capacity(1, Box::new(Stuck))));
        let dropped = Counter::default();
        let log = AccessLog {
            tx,
            dropped: dropped.clone(),
        };
        let started = std::time::Instant::now();
        for i in 0..(QUEUE + 500) {
            log.log(format!("{i:0100}"));
        }
        assert!(started.elapsed() < Duration::from_secs(5), "log() blocked");
        assert!(dropped.get() >= 499, "dropped {}", dropped.get());
    }
}
