//! Per-connection memory: what a connection already has (its push diary), whether its client
//! refuses push, which page view may push on it, and its cached client key.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Per-connection memory: what this connection already has, and whether its client refuses push.
#[derive(Debug)]
pub struct ConnState {
    pub id: u64,
    /// The peer's address (the client's, unless the peer is a trusted proxy).
    pub client_ip: std::net::IpAddr,
    /// The peer is a trusted proxy: each request's client comes from its `X-Forwarded-For`.
    pub peer_trusted: bool,
    /// Paths pushed or requested on this connection: never pushed again on it.
    diary: Mutex<HashSet<String>>,
    push_refused: AtomicBool,
    /// Taken by the first page view that pushes; see [`ConnState::take_push_gate`].
    push_gate: AtomicBool,
    /// Requests and pushes on this connection, for the close log line.
    pub requests: AtomicU64,
    pub pushes: AtomicU64,
    /// The last User-Agent seen on this connection and its client key: the address is fixed per
    /// connection and the UA nearly always is, so the keyed hash runs about once per connection.
    client_key: Mutex<Option<(Option<String>, i64)>>,
}

impl ConnState {
    pub fn new(id: u64, client_ip: std::net::IpAddr, peer_trusted: bool) -> Self {
        ConnState {
            id,
            client_ip,
            peer_trusted,
            diary: Mutex::new(HashSet::new()),
            push_refused: AtomicBool::new(false),
            push_gate: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            pushes: AtomicU64::new(0),
            client_key: Mutex::new(None),
        }
    }

    /// The client key for a request with `user_agent` on this connection, computed by `key` only
    /// when the User-Agent differs from the previous request's.
    pub fn client_key(
        &self,
        user_agent: Option<&str>,
        key: impl FnOnce(Option<&str>) -> i64,
    ) -> i64 {
        let mut last = self.client_key.lock().unwrap_or_else(|p| p.into_inner());
        match &*last {
            Some((ua, k)) if ua.as_deref() == user_agent => *k,
            _ => {
                let k = key(user_agent);
                *last = Some((user_agent.map(String::from), k));
                k
            }
        }
    }

    pub fn note(&self, path: &str) {
        if let Ok(mut d) = self.diary.lock()
            && d.len() < 4096
        {
            d.insert(path.to_string());
        }
    }

    /// Claims `path` for this connection: true when it was neither requested nor claimed before.
    /// Check and insert are one step, so two page views in flight at once never both push it.
    pub(crate) fn claim(&self, path: &str) -> bool {
        self.diary
            .lock()
            .map(|mut d| d.insert(path.to_string()))
            .unwrap_or(false)
    }

    pub fn push_refused(&self) -> bool {
        self.push_refused.load(Ordering::Relaxed)
    }

    /// True for the one page view per connection that may push; later ones get 103 hints.
    ///
    /// Why: the `h2` crate sends the frames of different streams round-robin, so PUSH_PROMISEs
    /// queued on two parent streams at once can reach the client with decreasing promised stream
    /// ids, which RFC 9113 §5.1.1 makes a connection error (nghttp answers GOAWAY PROTOCOL_ERROR).
    /// With a single parent stream per connection the promises stay in id order.
    pub fn take_push_gate(&self) -> bool {
        self.push_gate
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The first failed push is the answer for the connection (h2 has no getter for ENABLE_PUSH).
    pub fn refuse_push(&self) {
        self.push_refused.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_key_is_hashed_again_only_when_the_user_agent_changes() {
        let conn = ConnState::new(1, "192.0.2.7".parse().unwrap(), false);
        let keyer = pushwise_store::ClientKeyer::new([7; 32]);
        let calls = std::cell::Cell::new(0);
        let key = |ua: Option<&str>| {
            calls.set(calls.get() + 1);
            keyer.key("192.0.2.7", ua)
        };
        let a = conn.client_key(Some("UA-1"), key);
        assert_eq!(conn.client_key(Some("UA-1"), key), a);
        assert_eq!(calls.get(), 1);
        let b = conn.client_key(Some("UA-2"), key);
        assert_ne!(a, b);
        assert_eq!(b, keyer.key("192.0.2.7", Some("UA-2")));
        assert_eq!(conn.client_key(None, key), keyer.key("192.0.2.7", None));
        assert_eq!(calls.get(), 3);
    }
}
