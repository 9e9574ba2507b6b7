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

/// One client's history as far as the rule needs it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Activity {
    took: bool,
    quiet_views: u16,
}

impl Activity {
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
    fn the_setting_accepts_0_to_100_only() {
        assert_eq!("0".parse::<QuietAfter>().unwrap(), QuietAfter::OFF);
        assert_eq!("100".parse::<QuietAfter>().unwrap().get(), 100);
        for bad in ["101", "-1", "x", "", "70000"] {
            let e = bad.parse::<QuietAfter>().unwrap_err().to_string();
            assert!(e.contains("0 (off) to 100"), "{bad}: {e}");
        }
    }
}
