//! Client keys with a salt that rotates: the keyed hash every recorded request carries, and the
//! hand-over that keeps a visit in progress under one key when the salt changes.
//!
//! Why a hand-over: the analyzer attributes an asset to the page view of the same client key
//! within the attribution window. Switching every client to the new salt at one instant would
//! split each visit in progress at that instant into two clients, a page view without its assets
//! and assets without their page. So, for one attribution window before the scheduled rotation,
//! the keys in use are remembered (in memory only, bounded); after the rotation a client whose
//! old key was seen within the last window keeps it for as long as it stays active (gaps shorter
//! than the window), and every other client gets the new key. When no remembered client has been
//! active for a window, or after [`HANDOVER_MAX`], the old salt is forgotten for good.
//!
//! Outside those moments (about 20 seconds a month by default) this costs one atomic load per
//! new connection, and connections keep their key cached as before.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use pushwise_store::ClientKeyer;

/// The longest a rotation's hand-over lasts, however active the remembered clients stay.
pub const HANDOVER_MAX: Duration = Duration::from_secs(30 * 60);

/// Clients remembered around a rotation at most; beyond it a visit in progress may be split
/// (counted in nothing worse than one page view's evidence).
const REMEMBERED_MAX: usize = 200_000;

/// The keyer every connection uses.
#[derive(Debug)]
pub struct ClientKeys {
    state: RwLock<State>,
    /// Changes whenever keys may change (tracking starts, the salt is swapped, the hand-over
    /// ends): connections cache their key together with the epoch it was computed in.
    epoch: AtomicU64,
    /// The phase is [`Phase::Steady`]: read without taking the lock.
    steady: AtomicBool,
    /// The attribution window: how recent a client must be to keep its old key.
    window: Duration,
}

#[derive(Debug)]
struct State {
    current: ClientKeyer,
    phase: Phase,
}

#[derive(Debug)]
enum Phase {
    /// No rotation near: keys are cached per connection.
    Steady,
    /// A rotation is about to happen: remember when each key was last used.
    Tracking(Mutex<HashMap<i64, Instant>>),
    /// The salt was swapped at `since`: remembered clients keep their old key while active.
    HandOver {
        previous: ClientKeyer,
        seen: Mutex<HashMap<i64, Instant>>,
        since: Instant,
    },
}

impl ClientKeys {
    pub fn new(salt: [u8; 32], window: Duration) -> ClientKeys {
        ClientKeys {
            state: RwLock::new(State {
                current: ClientKeyer::new(salt),
                phase: Phase::Steady,
            }),
            epoch: AtomicU64::new(0),
            steady: AtomicBool::new(true),
            window,
        }
    }

    /// The epoch a key computed now may be cached under, per connection; `None` while a
    /// rotation is near (every request is then keyed afresh). Two atomic loads, no lock.
    pub fn cache_epoch(&self) -> Option<u64> {
        let epoch = self.epoch.load(Ordering::Acquire);
        self.steady.load(Ordering::Acquire).then_some(epoch)
    }

    /// The attribution window the hand-over keeps visits whole for.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Marks a phase change: cached keys from before it are stale.
    fn changed(&self, steady: bool) {
        self.steady.store(steady, Ordering::Release);
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// The client key of `ip` + `user_agent`, now.
    pub fn key(&self, ip: &str, user_agent: Option<&str>) -> i64 {
        self.key_at(ip, user_agent, Instant::now())
    }

    fn key_at(&self, ip: &str, user_agent: Option<&str>, now: Instant) -> i64 {
        let st = self.read();
        match &st.phase {
            Phase::Steady => st.current.key(ip, user_agent),
            Phase::Tracking(seen) => {
                let k = st.current.key(ip, user_agent);
                remember(seen, k, now);
                k
            }
            Phase::HandOver { previous, seen, .. } => {
                let old = previous.key(ip, user_agent);
                let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                match seen.get_mut(&old) {
                    Some(last) if now.saturating_duration_since(*last) < self.window => {
                        *last = now;
                        old
                    }
                    _ => st.current.key(ip, user_agent),
                }
            }
        }
    }

    /// A rotation is due within one window: start remembering who is active.
    pub fn start_tracking(&self) {
        let mut st = self.write();
        if matches!(st.phase, Phase::Steady) {
            st.phase = Phase::Tracking(Mutex::new(HashMap::new()));
            self.changed(false);
        }
    }

    /// Puts `salt` in use; clients active in the last window keep their old key while active.
    pub fn rotate(&self, salt: [u8; 32]) {
        self.rotate_at(salt, Instant::now());
    }

    fn rotate_at(&self, salt: [u8; 32], now: Instant) {
        let mut st = self.write();
        let seen = match std::mem::replace(&mut st.phase, Phase::Steady) {
            Phase::Tracking(seen) => seen.into_inner().unwrap_or_else(|p| p.into_inner()),
            // Rotating without a tracking window (a server that starts after the due time): no
            // visit of this process is in progress yet.
            Phase::Steady | Phase::HandOver { .. } => HashMap::new(),
        };
        let previous = std::mem::replace(&mut st.current, ClientKeyer::new(salt));
        st.phase = Phase::HandOver {
            previous,
            seen: Mutex::new(seen),
            since: now,
        };
        self.changed(false);
    }

    /// Ends the hand-over when no remembered client was active within the last window, or when
    /// it has lasted [`HANDOVER_MAX`]. Returns true once the old salt is forgotten (or there was
    /// none).
    pub fn finish_handover_if_idle(&self) -> bool {
        self.finish_handover_at(Instant::now())
    }

    fn finish_handover_at(&self, now: Instant) -> bool {
        let mut st = self.write();
        let done = match &st.phase {
            Phase::HandOver { seen, since, .. } => {
                let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                now.saturating_duration_since(*since) >= HANDOVER_MAX
                    || seen
                        .values()
                        .all(|t| now.saturating_duration_since(*t) >= self.window)
            }
            Phase::Steady | Phase::Tracking(_) => return true,
        };
        if done {
            st.phase = Phase::Steady;
            self.changed(true);
        }
        done
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }
}

fn remember(seen: &Mutex<HashMap<i64, Instant>>, key: i64, now: Instant) {
    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    if seen.len() < REMEMBERED_MAX || seen.contains_key(&key) {
        seen.insert(key, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(10);

    #[test]
    fn a_visit_in_progress_keeps_its_key_across_a_rotation_and_idle_clients_get_the_new_one() {
        let keys = ClientKeys::new([1; 32], W);
        let t0 = Instant::now();
        let before = keys.key_at("192.0.2.1", Some("A"), t0);
        let idle_before = keys.key_at("192.0.2.2", Some("B"), t0);
        keys.start_tracking();
        // Only A is active in the window before the rotation.
        assert_eq!(
            keys.key_at("192.0.2.1", Some("A"), t0 + Duration::from_secs(5)),
            before
        );
        keys.rotate_at([2; 32], t0 + Duration::from_secs(10));
        // A keeps its key while it stays active (gaps under the window)...
        for s in [12, 20, 29, 38] {
            let at = t0 + Duration::from_secs(s);
            assert_eq!(keys.key_at("192.0.2.1", Some("A"), at), before, "at {s} s");
        }
        // ...B, quiet before the rotation, is a new key at once...
        let b_after = keys.key_at("192.0.2.2", Some("B"), t0 + Duration::from_secs(12));
        assert_ne!(b_after, idle_before);
        assert_eq!(
            b_after,
            ClientKeyer::new([2; 32]).key("192.0.2.2", Some("B"))
        );
        // ...and A, after a pause longer than the window, too.
        assert!(!keys.finish_handover_at(t0 + Duration::from_secs(40)));
        let a_after = keys.key_at("192.0.2.1", Some("A"), t0 + Duration::from_secs(49));
        assert_ne!(a_after, before);
        assert!(keys.finish_handover_at(t0 + Duration::from_secs(49)));
        assert!(keys.cache_epoch().is_some());
        assert_eq!(keys.key("192.0.2.1", Some("A")), a_after);
    }

    #[test]
    fn the_handover_ends_after_its_maximum_however_active_the_old_clients_are() {
        let keys = ClientKeys::new([1; 32], W);
        let t0 = Instant::now();
        keys.start_tracking();
        let old = keys.key_at("192.0.2.1", None, t0);
        keys.rotate_at([2; 32], t0);
        let mut t = t0;
        while t < t0 + HANDOVER_MAX {
            assert_eq!(keys.key_at("192.0.2.1", None, t), old);
            assert!(!keys.finish_handover_at(t));
            t += Duration::from_secs(5);
        }
        assert!(keys.finish_handover_at(t));
        assert_ne!(keys.key_at("192.0.2.1", None, t), old);
    }

    #[test]
    fn every_phase_change_moves_the_epoch_so_cached_keys_are_recomputed() {
        let keys = ClientKeys::new([1; 32], W);
        let first = keys.cache_epoch().expect("steady: cacheable");
        keys.start_tracking();
        assert_eq!(keys.cache_epoch(), None);
        keys.rotate([2; 32]);
        assert_eq!(keys.cache_epoch(), None);
        assert!(keys.finish_handover_at(Instant::now() + W));
        let last = keys.cache_epoch().expect("steady again");
        assert_ne!(first, last, "keys cached before the rotation are stale");
    }
}
