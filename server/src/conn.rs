//! Per-connection memory: what a connection already has (its push diary), whether its client
//! refuses push, which page view may push on it, and its cached client key.

use std::collections::HashSet;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

use pushwise_store::UaClass;

/// Most paths a connection's diary remembers as requested: a connection that asks for more
/// simply may be pushed something it fetched long ago (harmless, and a client's own choice).
const DIARY_REQUESTED_MAX: usize = 4096;

/// One process-wide random hasher for diary entries: a client cannot choose paths that collide.
static DIARY_HASHER: LazyLock<foldhash::quality::RandomState> = LazyLock::new(Default::default);

/// A path as the diary keeps it: 8 bytes whatever the path's length, so a connection's diary
/// costs at most ~64 KiB even when a client requests 4 KB paths. Two paths colliding only means
/// one push skipped.
fn diary_key(path: &str) -> u64 {
    DIARY_HASHER.hash_one(path)
}

/// Per-connection memory: what this connection already has, and whether its client refuses push.
#[derive(Debug)]
pub struct ConnState {
    pub id: u64,
    /// The peer's address (the client's, unless the peer is a trusted proxy).
    pub client_ip: std::net::IpAddr,
    /// The peer is a trusted proxy: each request's client comes from its `X-Forwarded-For`.
    pub peer_trusted: bool,
    /// Paths pushed or requested on this connection (as [`diary_key`]s): never pushed again on it.
    diary: Mutex<HashSet<u64, foldhash::fast::FixedState>>,
    push_refused: AtomicBool,
    /// Taken by the first page view that pushes; see [`ConnState::take_push_gate`].
    push_gate: AtomicBool,
    /// Requests and pushes on this connection, for the close log line.
    pub requests: AtomicU64,
    pub pushes: AtomicU64,
    /// The last User-Agent seen on this connection, its client key and its class: the address is
    /// fixed per connection and the UA nearly always is, so the keyed hash and the classification
    /// run about once per connection.
    client_key: Mutex<Option<CachedClient>>,
}

/// The salt epoch and User-Agent a client key and class were computed for, and those two.
type CachedClient = (u64, Option<String>, i64, UaClass);

impl ConnState {
    pub fn new(id: u64, client_ip: std::net::IpAddr, peer_trusted: bool) -> Self {
        ConnState {
            id,
            client_ip,
            peer_trusted,
            diary: Mutex::new(HashSet::default()),
            push_refused: AtomicBool::new(false),
            push_gate: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            pushes: AtomicU64::new(0),
            client_key: Mutex::new(None),
        }
    }

    /// The client key for a request with `user_agent` on this connection, and the UA's class,
    /// computed (the key by `key`) only when the User-Agent or the keyer's `epoch` differs from
    /// the previous request's. With no epoch (a salt rotation is near) both are computed every
    /// time and not cached.
    pub fn client_key(
        &self,
        epoch: Option<u64>,
        user_agent: Option<&str>,
        key: impl FnOnce(Option<&str>) -> i64,
    ) -> (i64, UaClass) {
        let Some(epoch) = epoch else {
            return (key(user_agent), UaClass::of(user_agent));
        };
        let mut last = self.client_key.lock().unwrap_or_else(|p| p.into_inner());
        match &*last {
            Some((e, ua, k, class)) if *e == epoch && ua.as_deref() == user_agent => (*k, *class),
            _ => {
                let (k, class) = (key(user_agent), UaClass::of(user_agent));
                *last = Some((epoch, user_agent.map(String::from), k, class));
                (k, class)
            }
        }
    }

    pub fn note(&self, path: &str) {
        if let Ok(mut d) = self.diary.lock()
            && d.len() < DIARY_REQUESTED_MAX
        {
            d.insert(diary_key(path));
        }
    }

    /// Claims `path` for this connection: true when it was neither requested nor claimed before.
    /// Check and insert are one step, so two page views in flight at once never both push it.
    pub(crate) fn claim(&self, path: &str) -> bool {
        self.diary
            .lock()
            .map(|mut d| d.insert(diary_key(path)))
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
    fn client_key_and_ua_class_are_computed_again_only_when_the_user_agent_or_the_salt_epoch_changes()
     {
        let conn = ConnState::new(1, "192.0.2.7".parse().unwrap(), false);
        let keyer = pushwise_store::ClientKeyer::new([7; 32]);
        let calls = std::cell::Cell::new(0);
        let key = |ua: Option<&str>| {
            calls.set(calls.get() + 1);
            keyer.key("192.0.2.7", ua)
        };
        let a = conn.client_key(Some(0), Some("UA-1"), key);
        assert_eq!(conn.client_key(Some(0), Some("UA-1"), key), a);
        assert_eq!(a.1, UaClass::Other);
        let bot = "Mozilla/5.0 (compatible; Googlebot/2.1)";
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
        assert_eq!(conn.client_key(Some(0), Some(bot), key).1, UaClass::Other);
        assert_eq!(
            conn.client_key(Some(0), Some(firefox), key).1,
            UaClass::Browser
        );
        assert_eq!(
            conn.client_key(Some(0), Some(firefox), key).1,
            UaClass::Browser
        );
        assert_eq!(calls.get(), 3);
        conn.client_key(Some(0), Some("UA-1"), key);
        assert_eq!(calls.get(), 4);
        let b = conn.client_key(Some(0), Some("UA-2"), key);
        assert_ne!(a, b);
        assert_eq!(b.0, keyer.key("192.0.2.7", Some("UA-2")));
        assert_eq!(
            conn.client_key(Some(0), None, key).0,
            keyer.key("192.0.2.7", None)
        );
        assert_eq!(calls.get(), 6);
        // A new epoch (the salt rotated) or none (a rotation is near) computes it again.
        conn.client_key(Some(1), None, key);
        assert_eq!(calls.get(), 7);
        conn.client_key(None, None, key);
        conn.client_key(None, None, key);
        assert_eq!(calls.get(), 9);
    }

    #[test]
    fn the_diary_keeps_fixed_size_entries_whatever_the_paths_length() {
        let conn = ConnState::new(1, "192.0.2.7".parse().unwrap(), false);
        let long = "x".repeat(4096);
        for i in 0..10_000 {
            conn.note(&format!("/{i}/{long}"));
        }
        let d = conn.diary.lock().unwrap();
        assert_eq!(d.len(), DIARY_REQUESTED_MAX);
        // 8 bytes an entry: the 4 KB paths themselves are nowhere in memory.
        assert!(d.capacity() * std::mem::size_of::<u64>() <= 128 * 1024);
        drop(d);
        assert!(!conn.claim(&format!("/0/{long}")));
    }

    #[test]
    fn a_requested_or_claimed_path_is_never_claimed_again() {
        let conn = ConnState::new(1, "192.0.2.7".parse().unwrap(), false);
        conn.note("/css/site.css");
        assert!(!conn.claim("/css/site.css"));
        assert!(conn.claim("/js/app.js"));
        assert!(!conn.claim("/js/app.js"));
        assert!(conn.claim("/js/app.js?v=2"));
    }
}
