//! Sessions: one client's events on one source (live traffic, or one imported file), kept together
//! until that source's clock has moved a session gap past the last of them. A session is the unit
//! the incremental learner attributes and counts.
//!
//! Why sessions: attribution ties requests to page views of the same client within minutes, so a
//! pass can count a session once nothing later can join it, and keep only the open ones for the
//! next pass. Which events form a session depends only on the event stream (each source's clock
//! is the latest request time seen on it), plus, for live traffic, the pass's wall clock under the
//! assumption that an event is written at most [`LATENESS_MS`] after its request time. So however
//! the stream is cut into passes, every session gets the same events as in one rebuild.

use std::collections::{HashMap, HashSet};

use pushwise_store::rows::EventRow;

use crate::attribute::Names;
use crate::params::LearnParams;
use crate::tally::{InfoTally, Tally};

/// A client's session closes once its source's clock is this far past its last request.
pub const SESSION_GAP_MS: i64 = 10 * 60_000;
/// A live event is written at most this long after its request time (slow responses, batching).
pub const LATENESS_MS: i64 = 60_000;
/// The source number of live traffic.
pub const LIVE: i64 = 0;
/// Sessions are swept for closing after this many new events (bounds memory on long imports).
const SWEEP_EVERY: usize = 50_000;

/// The events of one session (never empty), in id order.
#[derive(Debug)]
struct Session {
    last_ts: i64,
    events: Vec<EventRow>,
}

impl Session {
    fn first_id(&self) -> i64 {
        self.events[0].id
    }
}

/// The sessions of one pass, fed events in id order.
pub struct Sessions {
    lp: LearnParams,
    /// Events up to here were read by earlier passes: only open sessions' events are taken again.
    watermark: i64,
    reopen: HashMap<(i64, i64), i64>,
    pub clocks: HashMap<i64, i64>,
    open: HashMap<(i64, i64), Session>,
    since_sweep: usize,
    pub events_new: usize,
    pub events_again: usize,
    pub info: InfoTally,
}

impl Sessions {
    pub fn new(
        lp: LearnParams,
        watermark: i64,
        reopen: HashMap<(i64, i64), i64>,
        clocks: HashMap<i64, i64>,
    ) -> Sessions {
        Sessions {
            lp,
            watermark,
            reopen,
            clocks,
            open: HashMap::new(),
            since_sweep: 0,
            events_new: 0,
            events_again: 0,
            info: InfoTally::default(),
        }
    }

    /// The first event id the pass must read: the oldest open session's, or the first new one.
    pub fn read_from(&self) -> i64 {
        self.reopen
            .values()
            .copied()
            .min()
            .unwrap_or(i64::MAX)
            .min(self.watermark + 1)
    }

    /// Takes the next events (in id order); sessions that close are tallied into `closed`.
    pub fn feed(&mut self, events: Vec<EventRow>, closed: &mut Tally, names: &mut Names) {
        for e in events {
            let key = (e.client, e.source);
            if e.id <= self.watermark {
                // Read before: only an open session's events count again, and nothing closes
                // until the open sessions are whole again (all of their events precede the new).
                if self.reopen.get(&key).is_none_or(|&first| e.id < first) {
                    continue;
                }
                self.events_again += 1;
                self.add(key, e);
                continue;
            }
            self.events_new += 1;
            self.info.add(&e);
            let clock = self.clocks.entry(e.source).or_insert(i64::MIN);
            *clock = (*clock).max(e.ts_ms);
            let clock = *clock;
            if self
                .open
                .get(&key)
                .is_some_and(|s| s.last_ts < clock - SESSION_GAP_MS)
            {
                self.close(key, closed, names);
            }
            if self.add(key, e) >= self.lp.max_session_events {
                // Decided by the session's own events only, so every cut into passes closes it
                // at the same event (re-read sessions are always below the bound).
                self.close(key, closed, names);
            }
            self.since_sweep += 1;
            if self.since_sweep >= SWEEP_EVERY {
                self.since_sweep = 0;
                self.close_where(closed, names, |_, _| false);
            }
        }
    }

    /// Closes every session its source's clock has moved a gap past, and those of `done` sources.
    fn close_where(
        &mut self,
        closed: &mut Tally,
        names: &mut Names,
        also: impl Fn(i64, &Session) -> bool,
    ) {
        let clocks = &self.clocks;
        let mut shut: Vec<(i64, i64)> = self
            .open
            .iter()
            .filter(|((_, src), s)| {
                clocks
                    .get(src)
                    .is_some_and(|c| s.last_ts < c - SESSION_GAP_MS)
                    || also(*src, s)
            })
            .map(|(k, _)| *k)
            .collect();
        // Close in a fixed order, so the sums come out the same on every run.
        shut.sort_by_key(|k| self.open[k].first_id());
        for k in shut {
            self.close(k, closed, names);
        }
    }

    /// Adds `e` to its session (opening one if needed); returns how many events it now holds.
    fn add(&mut self, key: (i64, i64), e: EventRow) -> usize {
        let s = self.open.entry(key).or_insert_with(|| Session {
            last_ts: i64::MIN,
            events: Vec::new(),
        });
        s.last_ts = s.last_ts.max(e.ts_ms);
        s.events.push(e);
        s.events.len()
    }

    /// Closes the open session `key`: attributes it and tallies its views into `closed`.
    fn close(&mut self, key: (i64, i64), closed: &mut Tally, names: &mut Names) {
        if let Some(s) = self.open.remove(&key) {
            closed.add_session(&s.events, &self.lp, names, true);
        }
    }

    /// Ends the pass at wall-clock time `now_ms`: live traffic's clock moves to `now − lateness`,
    /// and sessions of imports in `done` close.
    pub fn finish(
        mut self,
        now_ms: i64,
        done: &HashSet<i64>,
        closed: &mut Tally,
        names: &mut Names,
    ) -> Finished {
        let live = self.clocks.entry(LIVE).or_insert(i64::MIN);
        *live = (*live).max(now_ms - LATENESS_MS);
        self.close_where(closed, names, |src, _| src != LIVE && done.contains(&src));
        let mut still: Vec<Session> = self.open.into_values().collect();
        still.sort_by_key(Session::first_id);
        Finished {
            open: still.into_iter().map(|s| s.events).collect(),
            clocks: self.clocks,
            info: self.info,
        }
    }
}

/// What is left when a pass has read everything: the sessions still open (their events), the
/// sources' clocks, and what the new events said about each path.
pub struct Finished {
    pub open: Vec<Vec<EventRow>>,
    pub clocks: HashMap<i64, i64>,
    pub info: InfoTally,
}

impl Finished {
    /// The open sessions as (client, source) → first event id, for the next pass.
    pub fn reopen(&self) -> HashMap<(i64, i64), i64> {
        self.open
            .iter()
            .map(|events| {
                let e = &events[0];
                ((e.client, e.source), e.id)
            })
            .collect()
    }
}
