//! Tallies of attributed page views, keyed by page, context and asset names: what one pass folds
//! into the store's decayed counts, or adds on top of them for the sessions still open.
//!
//! Weights are relative to one reference time `ref_ms`: a view at `t` weighs 2^((t - ref) / hl).
//! Adding views is then plain addition, whatever order sessions close in. When a view would weigh
//! more than 2^512 the reference moves to it and everything counted so far is scaled down once
//! (`rescale` records the factor the store must apply to what it holds).

use std::collections::HashMap;

use pushwise_store::rows::EventRow;
use pushwise_store::{AssetCount, ViewCount};

use crate::attribute::{AssetInfo, Names, attribute_with};
use crate::estimate::{AssetEstimate, Estimates, PageEstimate, add_view, contexts_of};
use crate::params::LearnParams;

/// Past this exponent the reference time moves forward (2^512 is far from f64's limit, 2^1023).
const MAX_EXPONENT: f64 = 512.0;

/// Decayed view and asset tallies.
#[derive(Debug)]
pub struct Tally {
    pub est: Estimates,
    pub ref_ms: Option<i64>,
    half_life_ms: f64,
    /// Factor by which stored weights must be multiplied to share this tally's `ref_ms`.
    pub rescale: f64,
    /// Views tallied and requests that matched no view.
    pub views: usize,
    pub unattributed: usize,
}

impl Tally {
    pub fn new(ref_ms: Option<i64>, half_life_ms: i64) -> Tally {
        Tally {
            est: Estimates::new(),
            ref_ms,
            half_life_ms: half_life_ms.max(1) as f64,
            rescale: 1.0,
            views: 0,
            unattributed: 0,
        }
    }

    /// The weight of a view at `ts`, moving the reference time forward first if it is too far.
    fn weight(&mut self, ts: i64, may_move: bool) -> f64 {
        if may_move {
            self.keep_near(ts);
        }
        let r = *self.ref_ms.get_or_insert(ts);
        ((ts - r) as f64 / self.half_life_ms).exp2()
    }

    /// Moves the reference time to `ts` when a view at `ts` would weigh more than 2^512, scaling
    /// what is tallied (and, through `rescale`, what is stored) to match.
    pub fn keep_near(&mut self, ts: i64) {
        let Some(r) = self.ref_ms else { return };
        if (ts - r) as f64 / self.half_life_ms > MAX_EXPONENT {
            let factor = ((r - ts) as f64 / self.half_life_ms).exp2();
            self.rescale *= factor;
            self.scale_to(r, ts);
        }
    }

    /// Attributes one closed (or still open) session and tallies its views. `may_move`: whether the
    /// reference time may move (not for tallies added on top of stored counts).
    pub fn add_session(
        &mut self,
        events: &[EventRow],
        lp: &LearnParams,
        names: &mut Names,
        may_move: bool,
    ) {
        let (views, unattributed) = attribute_with(events, lp, names);
        self.unattributed += unattributed;
        for view in views.iter().filter(|v| !v.over_cap) {
            let w = self.weight(view.ts_ms, may_move);
            self.views += 1;
            add_view(&mut self.est, view, w);
        }
    }

    /// Re-expresses every weight at reference time `to` instead of `from`.
    pub fn scale_to(&mut self, from: i64, to: i64) {
        let factor = ((from - to) as f64 / self.half_life_ms).exp2();
        for pe in self.est.values_mut() {
            pe.weighted *= factor;
            for a in pe.assets.values_mut() {
                a.hit_w *= factor;
                a.unknown_w *= factor;
            }
        }
        self.ref_ms = Some(to);
    }

    /// The tallies as rows for the store: per request context only, since the page-wide counts are
    /// their sums (see [`Tally::add_stored`]).
    pub fn rows(&self, names: &Names) -> (Vec<ViewCount>, Vec<AssetCount>) {
        let mut views = Vec::with_capacity(self.est.len());
        let mut assets = Vec::new();
        for (&(page, context), pe) in &self.est {
            if context.is_page_wide() {
                continue;
            }
            let page = &names.names[page as usize];
            views.push(ViewCount {
                page: page.clone(),
                context,
                views: pe.views,
                weighted: pe.weighted,
            });
            for (&a, ae) in &pe.assets {
                assets.push(AssetCount {
                    page: page.clone(),
                    context,
                    asset: names.names[a as usize].clone(),
                    hit_n: ae.hit_n,
                    hit_w: ae.hit_w,
                    unknown_n: ae.unknown_n,
                    unknown_w: ae.unknown_w,
                    delay_ln_sum: ae.delay_ln_sum,
                });
            }
        }
        // In key order: the upserts then walk the stored b-trees in order instead of at random,
        // which on a large store is most of what folding costs.
        views.sort_unstable_by(|a, b| {
            (&a.page, a.context.as_str()).cmp(&(&b.page, b.context.as_str()))
        });
        assets.sort_unstable_by(|a, b| {
            (&a.page, a.context.as_str(), &a.asset).cmp(&(&b.page, b.context.as_str(), &b.asset))
        });
        (views, assets)
    }

    /// Adds stored counts (already at this tally's reference time) to the tallies, each row to its
    /// context and (browser contexts) to the page-wide estimate, which the store does not keep: it
    /// is their sum.
    pub fn add_stored(&mut self, views: &[ViewCount], assets: &[AssetCount], names: &mut Names) {
        for v in views {
            let page = names.id(&v.page);
            for context in contexts_of(v.context) {
                let pe: &mut PageEstimate = self.est.entry((page, context)).or_default();
                pe.views += v.views;
                pe.weighted += v.weighted;
            }
        }
        for a in assets {
            let (page, asset) = (names.id(&a.page), names.id(&a.asset));
            for context in contexts_of(a.context) {
                let pe = self.est.entry((page, context)).or_default();
                let ae: &mut AssetEstimate = pe.assets.entry(asset).or_default();
                ae.hit_n += a.hit_n;
                ae.hit_w += a.hit_w;
                ae.unknown_n += a.unknown_n;
                ae.unknown_w += a.unknown_w;
                ae.delay_ln_sum += a.delay_ln_sum;
            }
        }
    }
}

/// What the responses of each path said, from the events read for the first time.
#[derive(Debug, Default)]
pub struct InfoTally {
    rows: HashMap<String, AssetInfo>,
}

impl InfoTally {
    pub fn add(&mut self, e: &EventRow) {
        if !e.learnable() {
            return;
        }
        if let Some(i) = self.rows.get_mut(&e.path) {
            i.add(e);
        } else {
            let mut i = AssetInfo::unseen();
            i.add(e);
            self.rows.insert(e.path.clone(), i);
        }
    }

    /// The rows in path order (the order the store keeps them in).
    pub fn into_rows(self) -> Vec<(String, AssetInfo)> {
        let mut rows: Vec<_> = self.rows.into_iter().collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        rows
    }
}
