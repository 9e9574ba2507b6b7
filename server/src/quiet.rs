//! The quiet-client rule's memory on the server ([`pushwise_store::quiet`]): each recent browser
//! client's activity and the set its latest page view was offered, bounded, in memory only.
//!
//! Why in memory: the rule is decided on the request path, which never awaits SQLite, and it only
//! needs the last few minutes to hours of each client. Keys are the recorder's salted client keys
//! (never an address). At most [`MAX_CLIENTS`] are remembered; a client first seen while the map
//! is full is simply not tracked, so it is treated as every new client is (never held back). A
//! full map is swept of clients idle for a day
//! ([`FORGET_AFTER_MS`](pushwise_store::quiet::FORGET_AFTER_MS)) at most once a minute, so a
//! flood of new clients costs one sweep a minute, not one per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use dashmap::DashMap;
use pushwise_store::quiet::{Activity, QuietAfter};
use pushwise_store::sets::PlannedAsset;

/// Clients remembered at most (~100 bytes each with the map's overhead).
pub const MAX_CLIENTS: usize = 262_144;

/// A full map is swept at most this often.
const SWEEP_EVERY_MS: i64 = 60_000;

#[derive(Debug)]
struct Entry {
    activity: Activity,
    /// The set the client's latest page view was offered, until it takes any of it.
    offered: Option<Arc<[PlannedAsset]>>,
}

/// Recent browser clients' activity.
#[derive(Debug)]
pub struct QuietClients {
    map: DashMap<i64, Entry, foldhash::fast::RandomState>,
    max: usize,
    last_sweep_ms: AtomicI64,
    /// Set at the first client remembered: until then (the rule off, the default) an asset
    /// request costs one relaxed load here, not a map lookup.
    tracking: AtomicBool,
}

impl Default for QuietClients {
    fn default() -> Self {
        QuietClients::with_capacity(MAX_CLIENTS)
    }
}

impl QuietClients {
    /// A map that remembers at most `max` clients.
    pub fn with_capacity(max: usize) -> QuietClients {
        QuietClients {
            map: DashMap::default(),
            max,
            last_sweep_ms: AtomicI64::new(i64::MIN),
            tracking: AtomicBool::new(false),
        }
    }

    /// A browser page view of `client` is offered `offered` (a non-empty set): closes the
    /// client's previous view (quiet if it took nothing of its offer), answers whether this view
    /// is held back, and remembers this offer. With the rule off nothing is tracked.
    pub fn view(
        &self,
        client: i64,
        offered: &Arc<[PlannedAsset]>,
        after: QuietAfter,
        now_ms: i64,
    ) -> bool {
        if client == 0 || after.is_off() {
            return false;
        }
        let mut e = match self.map.get_mut(&client) {
            Some(e) => e,
            None => {
                if self.map.len() >= self.max {
                    self.sweep(now_ms);
                    if self.map.len() >= self.max {
                        return false;
                    }
                }
                self.tracking.store(true, Ordering::Relaxed);
                self.map.entry(client).or_insert(Entry {
                    activity: Activity::default(),
                    offered: None,
                })
            }
        };
        if e.activity.view_at(now_ms) {
            e.offered = None; // forgotten, with the offer it had not answered
        }
        if e.offered.take().is_some() {
            e.activity.close_view(false);
        }
        e.offered = Some(offered.clone());
        e.activity.quiet(after)
    }

    /// `client` asked for `path` (any answered status) or accepted it as a push: if its latest
    /// view was offered `path`, the client took it and is never held back.
    pub fn took(&self, client: i64, path: &str) {
        if client == 0 || !self.tracking.load(Ordering::Relaxed) {
            return;
        }
        let offered = self.map.get(&client).is_some_and(|e| {
            e.offered
                .as_ref()
                .is_some_and(|o| o.iter().any(|a| a.path == path))
        });
        if offered && let Some(mut e) = self.map.get_mut(&client) {
            e.activity.took();
            e.offered = None;
        }
    }

    /// Clients remembered now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Forgets clients idle for a day ([`Activity::idle_at`]), unless a sweep ran within the last minute.
    fn sweep(&self, now_ms: i64) {
        let last = self.last_sweep_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) < SWEEP_EVERY_MS
            || self
                .last_sweep_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.map.retain(|_, e| !e.activity.idle_at(now_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pushwise_store::quiet::FORGET_AFTER_MS;

    fn set(paths: &[&str]) -> Arc<[PlannedAsset]> {
        paths
            .iter()
            .map(|p| PlannedAsset {
                path: p.to_string(),
                bytes: 100,
                as_type: pushwise_store::rows::AsType::Style,
                probability: 0.5,
            })
            .collect()
    }

    const ONE: fn() -> QuietAfter = || QuietAfter::new(1).unwrap();

    #[test]
    fn a_client_offered_a_set_that_took_none_of_it_is_held_back_on_its_next_view() {
        let q = QuietClients::default();
        let s = set(&["/a.css", "/b.js"]);
        assert!(!q.view(7, &s, ONE(), 0), "a new client is never held back");
        q.took(7, "/favicon.ico"); // not offered: says nothing
        assert!(q.view(7, &s, ONE(), 1_000));
        // Another client that took an offered asset is not.
        assert!(!q.view(8, &s, ONE(), 0));
        q.took(8, "/b.js");
        assert!(!q.view(8, &s, ONE(), 1_000));
        assert!(!q.view(8, &s, ONE(), 2_000));
    }

    #[test]
    fn nothing_is_tracked_or_held_back_with_the_rule_off_or_without_a_client_key() {
        let q = QuietClients::default();
        let s = set(&["/a.css"]);
        for t in 0..3 {
            assert!(!q.view(7, &s, QuietAfter::OFF, t));
            assert!(!q.view(0, &s, ONE(), t));
        }
        assert!(q.is_empty());
    }

    #[test]
    fn a_client_idle_for_a_day_starts_over() {
        let q = QuietClients::default();
        let s = set(&["/a.css"]);
        q.view(7, &s, ONE(), 0);
        assert!(q.view(7, &s, ONE(), 1_000));
        assert!(!q.view(7, &s, ONE(), 1_000 + FORGET_AFTER_MS + 1));
    }

    #[test]
    fn a_flood_of_new_clients_stops_at_the_limit_and_idle_ones_are_swept_once_a_minute() {
        let q = QuietClients::with_capacity(1_000);
        let s = set(&["/a.css"]);
        for c in 1..=5_000 {
            q.view(c, &s, ONE(), 0);
        }
        assert_eq!(q.len(), 1_000, "the map never grows past its limit");
        // Clients beyond the limit are not tracked, so never held back.
        assert!(!q.view(4_000, &s, ONE(), 10));
        // A day later the idle ones go at the next new client, and it is tracked.
        let later = FORGET_AFTER_MS + 100;
        q.view(9_999, &s, ONE(), later);
        assert_eq!(q.len(), 1);
        assert!(q.view(9_999, &s, ONE(), later + 1));
        // Filled again with idle clients: within a minute of that sweep, no other runs (a flood
        // costs one sweep a minute); a minute later one does.
        for c in 10_000..11_000 {
            q.view(c, &s, ONE(), 0);
        }
        assert_eq!(q.len(), 1_000);
        assert!(!q.view(20_000, &s, ONE(), later + 2));
        assert_eq!(q.len(), 1_000, "no sweep within the minute");
        q.view(20_001, &s, ONE(), later + 60_001);
        assert_eq!(
            q.len(),
            2,
            "the sweep a minute later keeps the two recent clients"
        );
    }
}
