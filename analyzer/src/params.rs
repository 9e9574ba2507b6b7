//! The learner's settings: how requests are tied to page views and how old evidence fades
//! ([`LearnParams`]), and what goes into a set ([`SelectParams`]).

use std::collections::HashMap;

use pushwise_store::Store;
use pushwise_store::rows::PinAction;

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
}

impl Default for LearnParams {
    fn default() -> Self {
        LearnParams {
            window_ms: 10_000,
            referer_horizon_ms: 300_000,
            clock_skew_ms: 60_000,
            half_life_ms: 7 * 24 * 3600 * 1000,
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
    /// Per-page overrides of (threshold, min_support).
    pub overrides: HashMap<String, (Option<f64>, Option<i64>)>,
    /// Per-page pins and bans.
    pub pins: HashMap<String, Vec<(String, PinAction)>>,
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
        }
    }
}

impl SelectParams {
    /// Reads the operator's thresholds and pins from the store over the built-in defaults.
    pub async fn from_store(store: &Store) -> Result<SelectParams, Error> {
        let mut p = SelectParams::default();
        for t in store.thresholds().await? {
            if t.page.is_empty() {
                if let Some(v) = t.probability {
                    p.threshold = v;
                }
                if let Some(v) = t.min_support {
                    p.min_support = v;
                }
            } else {
                p.overrides.insert(t.page, (t.probability, t.min_support));
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

    /// The (threshold, minimum support) in force for `page`.
    pub fn for_page(&self, page: &str) -> (f64, i64) {
        match self.overrides.get(page) {
            Some((t, m)) => (t.unwrap_or(self.threshold), m.unwrap_or(self.min_support)),
            None => (self.threshold, self.min_support),
        }
    }
}
