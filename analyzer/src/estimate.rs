//! Estimation: P(asset | page) per request context and page-wide, each view weighted by its age,
//! leaving out views where the asset's need could not be observed.

use std::collections::HashMap;

use pushwise_store::Context;

use crate::attribute::View;

/// Decayed counts for one asset of one page in one context.
#[derive(Debug, Clone, Default)]
pub struct AssetEstimate {
    pub hit_w: f64,
    pub hit_n: i64,
    pub unknown_w: f64,
    pub unknown_n: i64,
    /// Sum of ln(1 + delay in ms) over the hits: the typical delay is their geometric mean, which
    /// (unlike a median) can be kept as a running sum across passes.
    pub delay_ln_sum: f64,
}

impl AssetEstimate {
    /// The typical delay after the page request, in ms: the geometric mean of 1 + delay, minus 1.
    pub fn typical_delay_ms(&self) -> i64 {
        if self.hit_n == 0 {
            return 0;
        }
        ((self.delay_ln_sum / self.hit_n as f64).exp() - 1.0).round() as i64
    }

    /// Adds one view that needed the asset `delay_ms` after the page, with weight `w`.
    pub fn hit(&mut self, w: f64, delay_ms: i64) {
        self.hit_w += w;
        self.hit_n += 1;
        self.delay_ln_sum += (delay_ms.max(0) as f64).ln_1p();
    }

    /// Adds one view where the asset's need was not observable, with weight `w`.
    pub fn unknown(&mut self, w: f64) {
        self.unknown_w += w;
        self.unknown_n += 1;
    }
}

/// Decayed counts for one page in one context (or page-wide).
#[derive(Debug, Clone, Default)]
pub struct PageEstimate {
    pub views: i64,
    pub weighted: f64,
    pub assets: HashMap<u32, AssetEstimate>,
}

impl PageEstimate {
    /// P(asset | view) and the number of views that back it (those where the asset's need was observable).
    pub fn probability(&self, a: &AssetEstimate) -> (f64, i64) {
        probability(self.weighted, self.views, a)
    }
}

/// P(asset | view) from a page's decayed view total and the asset's counts, and its support.
pub(crate) fn probability(weighted: f64, views: i64, a: &AssetEstimate) -> (f64, i64) {
    let denom = weighted - a.unknown_w;
    let support = views - a.unknown_n;
    if denom <= 0.0 || support <= 0 {
        (0.0, support.max(0))
    } else {
        ((a.hit_w / denom).clamp(0.0, 1.0), support)
    }
}

/// Estimates per (page id, context), the page-wide one under [`Context::PageWide`].
pub type Estimates = HashMap<(u32, Context), PageEstimate>;

/// Estimates P(asset | page) per context and page-wide, each view weighted by 0.5^(age / half-life).
/// Views where an asset was pushed, hinted or skipped say nothing about that asset and are left
/// out of its denominator: this is what keeps the estimate unbiased by pushwise's own pushes.
pub fn estimate<'a>(
    views: impl IntoIterator<Item = &'a View>,
    now_ms: i64,
    half_life_ms: i64,
) -> Estimates {
    // Ages are measured from the newest view (not from `now_ms` when that is later): a common
    // factor cancels in every ratio, and weights stay near 1 so old imported logs cannot underflow.
    let views: Vec<&View> = views.into_iter().collect();
    let newest = views
        .iter()
        .map(|v| v.ts_ms)
        .max()
        .unwrap_or(now_ms)
        .min(now_ms);
    let mut est: Estimates = HashMap::new();
    let hl = half_life_ms.max(1) as f64;
    for v in views {
        let age = (newest - v.ts_ms).max(0) as f64;
        add_view(&mut est, v, 0.5f64.powf(age / hl));
    }
    est
}

/// Adds one view with weight `w` to its page's estimate in its context, and page-wide when it is a
/// browser's (crawlers' views are kept apart: they say nothing about what a browser fetches).
/// A view over its network's learning cap adds nothing.
pub fn add_view(est: &mut Estimates, v: &View, w: f64) {
    if v.over_cap {
        return;
    }
    for context in contexts_of(v.context) {
        let key = (v.page, context);
        let pe = est.entry(key).or_default();
        pe.views += 1;
        pe.weighted += w;
        for &(a, d) in &v.needed {
            pe.assets.entry(a).or_default().hit(w, d);
        }
        for &a in &v.unknown {
            pe.assets.entry(a).or_default().unknown(w);
        }
    }
}

/// The estimates a view (or a stored count) of `context` adds to: its own, and the page-wide one
/// for browser contexts.
pub fn contexts_of(context: Context) -> impl Iterator<Item = Context> {
    std::iter::once(context).chain(context.feeds_page_wide().then_some(Context::PageWide))
}
