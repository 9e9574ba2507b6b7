//! The time of a connection's current turn: one clock read per poll of the connection, shared
//! by every request that turn answers.
//!
//! Why: a cached file is answered in about a microsecond, and each request asked the clock up to
//! seven times (its start, its event's timestamp, the file cache's freshness, `Date`, the idle
//! and send deadlines, its duration); `clock_gettime` was 2.5% of the server's profile on a 1 KB
//! asset. A turn lasts microseconds, so its start is the time of every request it reads.
//! Outside a turn (HTTP/1.1, push tasks, tests) the clock is read each time.

use std::cell::Cell;
use std::time::{Instant, SystemTime};

thread_local! {
    static TURN: Cell<Option<Now>> = const { Cell::new(None) };
}

/// One reading of both clocks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Now {
    /// For durations and deadlines.
    pub instant: Instant,
    /// For timestamps: the wall clock.
    pub system: SystemTime,
}

impl Now {
    fn read() -> Now {
        Now {
            instant: Instant::now(),
            system: SystemTime::now(),
        }
    }

    /// Unix milliseconds, as events carry them.
    pub fn unix_ms(&self) -> i64 {
        pushwise_store::time::unix_ms(self.system)
    }
}

/// The current turn's time, or the clocks read now outside a turn.
pub(crate) fn now() -> Now {
    TURN.get().unwrap_or_else(Now::read)
}

/// Runs `f` (one poll of a connection) as a turn: [`now`] inside it is the time it started.
pub(crate) fn turn<R>(f: impl FnOnce() -> R) -> R {
    let outer = TURN.replace(Some(Now::read()));
    // Restored even if `f` unwinds, so no later task on this thread reads a stale time.
    struct Restore(Option<Now>);
    impl Drop for Restore {
        fn drop(&mut self) {
            TURN.set(self.0);
        }
    }
    let _restore = Restore(outer);
    f()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_turn_reads_the_clock_once_and_outside_one_it_is_read_each_time() {
        let (a, b) = turn(|| {
            let a = now();
            std::thread::sleep(Duration::from_millis(5));
            (a, now())
        });
        assert_eq!(a.instant, b.instant);
        assert_eq!(a.unix_ms(), b.unix_ms());
        let c = now();
        std::thread::sleep(Duration::from_millis(5));
        assert!(now().instant > c.instant);
        assert!(c.instant > a.instant);
    }

    #[test]
    fn a_turn_that_panics_leaves_no_time_behind() {
        let r = std::panic::catch_unwind(|| turn(|| panic!("boom")));
        assert!(r.is_err());
        let c = now();
        std::thread::sleep(Duration::from_millis(5));
        assert!(now().instant > c.instant);
    }
}
