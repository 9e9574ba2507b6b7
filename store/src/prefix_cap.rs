//! The learning cap per network prefix: how many views of one page one network (/24 for IPv4,
//! /64 for IPv6) may teach the learner per window, so one host cannot pose as a crowd.
//!
//! Why: a client key is a hash of address and User-Agent, so a single host rotating its
//! User-Agent looks like many clients, and 200 of them viewing `/` and fetching `/x` would put
//! `/x` in `/`'s set for every later visitor. Views over the cap are still served and recorded
//! (flagged, so statistics stay whole); only learning ignores them. The server decides at
//! recording time and `import` at import time, so the learner's result does not depend on how
//! passes cut the event stream. Nothing here is stored: prefixes are hashed with a key that lives
//! only in this process's memory.
//!
//! Loopback, private (RFC 1918, IPv6 unique-local) and link-local addresses are not capped: they
//! are the operator's own networks (an intranet site, a demo on localhost), where many users
//! legitimately share a few prefixes and a hostile crowd is not the threat.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::event::{Event, PushMark};

/// The window the cap counts in.
pub const WINDOW_MS: i64 = 10 * 60_000;

/// (prefix, page) pairs tracked at most. Beyond it (more distinct networks in two windows than
/// this) the cap stops counting new pairs and admits them: failing closed would let a flood of
/// networks silence learning for everyone.
const MAX_TRACKED: usize = 100_000;

/// Counts page views per (network prefix, page, window). Cheap to share; one lock per page view.
#[derive(Debug)]
pub struct PrefixCap {
    per_page: u32,
    hasher: foldhash::quality::RandomState,
    counts: Mutex<HashMap<(u64, u64, i64), u32, foldhash::fast::RandomState>>,
}

/// The network an address belongs to for the cap: its /24 (IPv4, IPv4-mapped IPv6 included) or
/// its /64 (IPv6).
pub fn network_of(ip: IpAddr) -> [u8; 8] {
    let mut out = [0u8; 8];
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            out[..3].copy_from_slice(&v4.octets()[..3]);
            out[7] = 4;
        }
        IpAddr::V6(v6) => out.copy_from_slice(&v6.octets()[..8]),
    }
    out
}

/// Whether `ip` is in a network the cap leaves alone (loopback, private, link-local).
pub fn is_exempt(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified()
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_unique_local()
                || v6.is_unicast_link_local()
        }
    }
}

impl PrefixCap {
    /// At most `per_page` views of a page per network per window are learned from; 0: no cap.
    pub fn new(per_page: u32) -> PrefixCap {
        PrefixCap {
            per_page,
            hasher: Default::default(),
            counts: Mutex::default(),
        }
    }

    /// Decides `e.over_cap` for an event a client at `ip` caused, and returns it: only a view the
    /// learner could learn from (a GET of a page answered 2xx, not a push mark) counts against the
    /// cap. The one rule for the server, which calls it as it records, and for `import`.
    pub fn mark(&self, e: &mut Event, ip: IpAddr) -> bool {
        e.over_cap = e.is_page
            && e.push == PushMark::Requested
            && (200..300).contains(&e.status)
            && e.method == "GET"
            && !self.admit(ip, &e.path, e.ts_ms);
        e.over_cap
    }

    /// Counts a view of `page` at `ts_ms` from `ip`; false when it is over the cap (it must not
    /// be learned from). Views keep counting over the cap, so a network stays capped for the rest
    /// of its window however it spreads its requests.
    pub fn admit(&self, ip: IpAddr, page: &str, ts_ms: i64) -> bool {
        if self.per_page == 0 || is_exempt(ip) {
            return true;
        }
        let window = ts_ms.div_euclid(WINDOW_MS);
        let key = (
            self.hasher.hash_one(network_of(ip)),
            self.hasher.hash_one(page),
            window,
        );
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if !counts.contains_key(&key) && counts.len() >= MAX_TRACKED {
            // Forget windows before the previous one (imports may revisit the previous one:
            // their timestamps are shuffled within a minute).
            counts.retain(|k, _| k.2 >= window - 1);
            if counts.len() >= MAX_TRACKED {
                return true;
            }
        }
        let n = counts.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        *n <= self.per_page
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_network_teaches_at_most_the_cap_per_page_per_window() {
        let cap = PrefixCap::new(3);
        let admitted = |from: &str, page: &str, ts: i64| cap.admit(ip(from), page, ts);
        // Four addresses of one /24: the fourth view is over.
        assert!(admitted("203.0.113.1", "/", 0));
        assert!(admitted("203.0.113.2", "/", 1));
        assert!(admitted("203.0.113.3", "/", 2));
        assert!(!admitted("203.0.113.4", "/", 3));
        // Another page, another network, the next window: each counted on its own.
        assert!(admitted("203.0.113.1", "/about", 4));
        assert!(admitted("198.51.100.1", "/", 5));
        assert!(admitted("203.0.113.1", "/", WINDOW_MS));
        // IPv6: a /64 is one network; an IPv4-mapped address is its IPv4 network.
        for i in 1..=3 {
            assert!(admitted(&format!("2001:db8:0:1::{i}"), "/", 0));
        }
        assert!(!admitted("2001:db8:0:1:ffff::9", "/", 0));
        assert!(admitted("2001:db8:0:2::1", "/", 0));
        assert!(!admitted("::ffff:203.0.113.77", "/", 10));
    }

    #[test]
    fn the_operators_own_networks_are_never_capped() {
        let cap = PrefixCap::new(1);
        for from in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.9",
            "192.168.1.1",
            "169.254.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!((0..5).all(|t| cap.admit(ip(from), "/", t)), "{from}");
        }
        assert!(cap.admit(ip("100.64.0.1"), "/", 0));
        assert!(
            !cap.admit(ip("100.64.0.2"), "/", 0),
            "carrier-grade NAT is public to the cap"
        );
    }

    #[test]
    fn no_cap_admits_everything_and_a_full_table_fails_open() {
        let none = PrefixCap::new(0);
        assert!((0..100).all(|i| none.admit(ip("203.0.113.1"), "/", i)));
        let cap = PrefixCap::new(1);
        // Distinct public /24s: 11.0.0.0, 11.0.1.0, ...
        for i in 0..MAX_TRACKED as u32 {
            assert!(cap.admit(IpAddr::from(((11 << 24) + (i << 8)).to_be_bytes()), "/", 0));
        }
        // The table is full of this window's networks: a new one is admitted, not tracked.
        assert!(cap.admit(ip("255.255.255.1"), "/", 0));
        assert!(cap.admit(ip("255.255.255.2"), "/", 0));
        // Two windows later the old entries are dropped and counting resumes.
        assert!(cap.admit(ip("255.255.255.1"), "/", 2 * WINDOW_MS));
        assert!(!cap.admit(ip("255.255.255.2"), "/", 2 * WINDOW_MS));
    }
}
