//! The paths this server has answered successfully, so a recorded Referer is only ever one of
//! them: a client choosing its Referer cannot grow the database's dictionary.
//!
//! Why: a Referer is only useful to the learner when it names a page or asset the same client
//! fetched, and every such path was answered here first (a 2xx or 304). Any other same-site
//! Referer path is recorded as [`OTHER_REFERER`], one dictionary row however many a client
//! invents; it still says "internal navigation", which is all the learner can use of it. The
//! set holds 8-byte hashes under a per-process random key and stops growing at [`MAX_PATHS`]
//! (a site with more distinct successful paths than that loses Referer chains to the newest
//! ones, and attribution falls back to time on the connection). The cost: the first view of a
//! page after a restart whose assets a 103 hint made the browser fetch before the page was
//! answered records those assets' Referer as other.

use std::hash::BuildHasher;
use std::sync::LazyLock;

use dashmap::DashSet;

/// The Referer recorded for a same-site path this server has not answered successfully.
pub const OTHER_REFERER: &str = "!other";

/// Successful paths remembered at most (~8 MiB of hashes with the set's overhead).
pub const MAX_PATHS: usize = 262_144;

static HASHER: LazyLock<foldhash::quality::RandomState> = LazyLock::new(Default::default);

/// Hashes of the paths answered successfully since start.
#[derive(Debug, Default)]
pub struct KnownPaths {
    set: DashSet<u64, foldhash::fast::FixedState>,
}

impl KnownPaths {
    /// Remembers `path` as answered successfully (until [`MAX_PATHS`] are remembered).
    pub fn insert(&self, path: &str) {
        let h = HASHER.hash_one(path);
        // Known paths are the common case: one shard's read lock. `len` locks every shard, so it
        // is asked only before an insert.
        if !self.set.contains(&h) && self.set.len() < MAX_PATHS {
            self.set.insert(h);
        }
    }

    pub fn contains(&self, path: &str) -> bool {
        self.set.contains(&HASHER.hash_one(path))
    }

    /// `referer` as it may be recorded: a same-site path this server answered, or
    /// [`OTHER_REFERER`] in its place.
    pub fn bound(&self, referer: pushwise_store::Referer) -> pushwise_store::Referer {
        use pushwise_store::Referer;
        match referer {
            Referer::SameSite(p) if !self.contains(&p) => {
                Referer::SameSite(OTHER_REFERER.to_string())
            }
            r => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pushwise_store::Referer;

    #[test]
    fn only_answered_paths_are_kept_as_referers() {
        let k = KnownPaths::default();
        k.insert("/blog/");
        assert_eq!(
            k.bound(Referer::SameSite("/blog/".into())),
            Referer::SameSite("/blog/".into())
        );
        assert_eq!(
            k.bound(Referer::SameSite("/made-up-1".into())),
            Referer::SameSite(OTHER_REFERER.into())
        );
        assert_eq!(k.bound(Referer::External), Referer::External);
        assert_eq!(k.bound(Referer::None), Referer::None);
    }

    #[test]
    fn the_set_stops_growing_at_its_maximum() {
        let k = KnownPaths::default();
        for i in 0..MAX_PATHS + 1000 {
            k.insert(&format!("/p{i}"));
        }
        assert_eq!(k.set.len(), MAX_PATHS);
        assert!(k.contains("/p0") && !k.contains(&format!("/p{}", MAX_PATHS + 999)));
    }
}
