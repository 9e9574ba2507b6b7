//! Quiet clients: a browser that was offered a page's set and took none of it is, on its next page
//! views, held back from pushes and hints; one rule the server, `tune` and `plan` share.
//!
//! Why: on real-shaped traffic most browser views fetch no assets at all (warm caches, blockers,
//! text browsers), and nothing in a request says which visitor is which, so every learned set is
//! partly wasted on them. A visitor's own history does say it: one that was offered a set (hinted,
//! or served without hints) and fetched none of it will, far more often than not, fetch nothing
//! on its next views either (BENCHMARKS.md, "Quiet clients"). A client that took any offered
//! asset is never held back again; pushes count as taken, so a client that accepts pushes is never
//! held back by its own pushes.

pub use crate::rows::{MAX_QUIET_AFTER, QuietAfter};

/// A client idle this long (no page view) is forgotten: its next view counts as a new client's.
pub const FORGET_AFTER_MS: i64 = 24 * 3600 * 1000;

/// One client's history as far as the rule needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activity {
    took: bool,
    quiet_views: u16,
    /// Its latest page view (`i64::MIN`: none yet).
    last_ms: i64,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            took: false,
            quiet_views: 0,
            last_ms: i64::MIN,
        }
    }
}

impl Activity {
    /// A page view of this client at `now_ms`: after [`FORGET_AFTER_MS`] idle its history is
    /// forgotten first. Returns whether it was.
    pub fn view_at(&mut self, now_ms: i64) -> bool {
        let forgot = self.idle_at(now_ms);
        if forgot {
            *self = Activity::default();
        }
        self.last_ms = self.last_ms.max(now_ms);
        forgot
    }

    /// Whether this client's next page view is held back from pushes and hints.
    pub fn quiet(self, after: QuietAfter) -> bool {
        !after.is_off() && !self.took && self.quiet_views >= after.get()
    }

    /// A page view that was offered a non-empty set ended; `took` = the client fetched (or was
    /// pushed) any asset of it. Views offered nothing say nothing and are not closed.
    pub fn close_view(&mut self, took: bool) {
        if took {
            self.took = true;
        } else {
            self.quiet_views = self.quiet_views.saturating_add(1);
        }
    }

    /// The client took an offered asset (it is never held back again).
    pub fn took(&mut self) {
        self.took = true;
    }

    /// Whether this client was idle for [`FORGET_AFTER_MS`] at `now_ms` (never seen: no).
    pub fn idle_at(self, now_ms: i64) -> bool {
        self.last_ms != i64::MIN && now_ms.saturating_sub(self.last_ms) > FORGET_AFTER_MS
    }

    /// One page view offered a non-empty set, replayed with its outcome known (`tune`'s replay,
    /// `plan --batch`, the benchmarks), in the server's order: forget an idle client (when the
    /// view's time is known), decide whether the view is held back, then close it with whether
    /// the client took any of the set (when known). Returns whether it was held back.
    pub fn replay_view(
        &mut self,
        at_ms: Option<i64>,
        after: QuietAfter,
        took: Option<bool>,
    ) -> bool {
        if let Some(t) = at_ms {
            self.view_at(t);
        }
        let quiet = self.quiet(after);
        if let Some(took) = took {
            self.close_view(took);
        }
        quiet
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_held_back_after_the_set_number_of_quiet_views_and_never_when_off() {
        let mut a = Activity::default();
        let (one, two) = (QuietAfter::new(1).unwrap(), QuietAfter::new(2).unwrap());
        assert!(!a.quiet(one), "a client never seen is not quiet");
        a.close_view(false);
        assert!(a.quiet(one));
        assert!(!a.quiet(two));
        assert!(!a.quiet(QuietAfter::OFF));
        a.close_view(false);
        assert!(a.quiet(two));
    }

    #[test]
    fn a_client_that_took_anything_offered_is_never_held_back() {
        let mut a = Activity::default();
        a.close_view(false);
        a.close_view(true);
        for _ in 0..10 {
            a.close_view(false);
        }
        assert!(!a.quiet(QuietAfter::new(1).unwrap()));
        let mut b = Activity::default();
        b.took();
        b.close_view(false);
        assert!(!b.quiet(QuietAfter::new(1).unwrap()));
    }

    #[test]
    fn a_client_idle_for_a_day_is_forgotten() {
        let one = QuietAfter::new(1).unwrap();
        let mut a = Activity::default();
        assert!(!a.view_at(0));
        a.close_view(false);
        assert!(!a.view_at(FORGET_AFTER_MS));
        assert!(a.quiet(one), "a day to the millisecond is not yet idle");
        assert!(a.view_at(2 * FORGET_AFTER_MS + 1));
        assert!(!a.quiet(one));
    }

    #[test]
    fn the_setting_accepts_0_to_100_only() {
        assert_eq!("0".parse::<QuietAfter>().unwrap(), QuietAfter::OFF);
        assert_eq!("100".parse::<QuietAfter>().unwrap().get(), 100);
        for bad in ["101", "-1", "x", "", "70000"] {
            let e = bad.parse::<QuietAfter>().unwrap_err().to_string();
            assert!(e.contains("0 (off) to 100"), "{bad}: {e}");
        }
    }
}
