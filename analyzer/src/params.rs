//! The learner's settings: how requests are tied to page views and how old evidence fades
//! ([`LearnParams`]), and what goes into a set ([`SelectParams`]).

use std::collections::HashMap;

use pushwise_store::Store;
use pushwise_store::quiet::QuietAfter;
use pushwise_store::rows::{PinAction, ThresholdRow};

use crate::error::Error;

/// How requests are tied to page views and how old evidence fades.
#[derive(Debug, Clone)]
pub struct LearnParams {
    /// An asset without a usable Referer belongs to the latest view on its connection this recent.
    pub window_ms: i64,
    /// An asset whose Referer names a page belongs to that page's view at most this old.
    pub referer_horizon_ms: i64,
    /// Log aggregation reorders lines within this much; a Referer may name a view logged later.
    pub clock_skew_ms: i64,
    /// Evidence loses half its weight every `half_life_ms`.
    pub half_life_ms: i64,
    /// A session closes once it holds this many events, even if its client never pauses (a
    /// monitor, a proxy that is not a `--trusted-proxy`): the analyzer holds open sessions in
    /// memory and reads them again each pass, so without this one tireless client would make
    /// every pass cost all of its history. Views cut at the boundary lose the assets after it.
    pub max_session_events: usize,
}

impl Default for LearnParams {
    fn default() -> Self {
        LearnParams {
            window_ms: 10_000,
            referer_horizon_ms: 300_000,
            clock_skew_ms: 60_000,
            half_life_ms: 7 * 24 * 3600 * 1000,
            max_session_events: 10_000,
        }
    }
}

/// What goes into a set: thresholds, caps, operator overrides.
#[derive(Debug, Clone)]
pub struct SelectParams {
    pub threshold: f64,
    pub min_support: i64,
    pub max_count: usize,
    pub max_bytes: i64,
    /// Per-page overrides of any of the four.
    pub overrides: HashMap<String, ThresholdRow>,
    /// Per-page pins and bans.
    pub pins: HashMap<String, Vec<(String, PinAction)>>,
    /// How many average views of its own an estimate's prior (the level above it) is worth.
    pub prior_views: f64,
    /// Clients held back after this many quiet views (not a selection rule: the server applies
    /// it per client; here so `tune` can score and recommend it with the rest).
    pub quiet_after: QuietAfter,
}

/// The weight of the level above in each estimate, in views. Measured on the shaped traffic
/// (BENCHMARKS.md, "Learning on real-shaped traffic"): smoothing beats none (mean F1 0.492 → 0.513
/// on an earlier calibration of the generator), and between 2 and 32 the result is flat.
pub const PRIOR_VIEWS: f64 = 8.0;

/// The limits in force for one page.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub threshold: f64,
    pub min_support: i64,
    pub max_count: usize,
    pub max_bytes: i64,
}

impl Default for SelectParams {
    fn default() -> Self {
        SelectParams {
            threshold: 0.5,
            min_support: 20,
            max_count: 16,
            max_bytes: 512 * 1024,
            overrides: HashMap::new(),
            pins: HashMap::new(),
            prior_views: PRIOR_VIEWS,
            quiet_after: QuietAfter::OFF,
        }
    }
}

impl SelectParams {
    /// Reads the operator's thresholds, caps and pins from the store over the built-in defaults.
    pub async fn from_store(store: &Store) -> Result<SelectParams, Error> {
        let mut p = SelectParams::default();
        for t in store.thresholds().await? {
            if t.page.is_empty() {
                let l = p.apply(&t);
                p.threshold = l.threshold;
                p.min_support = l.min_support;
                p.max_count = l.max_count;
                p.max_bytes = l.max_bytes;
                if let Some(q) = t.quiet_after {
                    p.quiet_after = QuietAfter::new(q).map_err(|e| {
                        Error::invalid(format!("the stored quiet-client setting: {e}"))
                    })?;
                }
            } else {
                p.overrides.insert(t.page.clone(), t);
            }
        }
        for pin in store.pins().await? {
            p.pins
                .entry(pin.page)
                .or_default()
                .push((pin.asset, pin.action));
        }
        Ok(p)
    }

    /// The lowest threshold in force anywhere: what a prior must reach to matter.
    pub fn lowest_threshold(&self) -> f64 {
        self.overrides
            .values()
            .filter_map(|t| t.probability)
            .fold(self.threshold, f64::min)
    }

    /// The limits in force for `page` (sections and pages without overrides: the global ones).
    pub fn for_page(&self, page: &str) -> Limits {
        match self.overrides.get(page) {
            Some(t) => self.apply(t),
            None => self.global(),
        }
    }

    fn global(&self) -> Limits {
        Limits {
            threshold: self.threshold,
            min_support: self.min_support,
            max_count: self.max_count,
            max_bytes: self.max_bytes,
        }
    }

    /// The global limits with what `t` sets in their place.
    fn apply(&self, t: &ThresholdRow) -> Limits {
        let g = self.global();
        Limits {
            threshold: t.probability.unwrap_or(g.threshold),
            min_support: t.min_support.unwrap_or(g.min_support),
            max_count: t
                .max_count
                .map_or(g.max_count, |n| usize::try_from(n).unwrap_or(usize::MAX)),
            max_bytes: t.max_bytes.unwrap_or(g.max_bytes),
        }
    }
}
