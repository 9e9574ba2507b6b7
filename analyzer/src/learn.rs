//! Learning: attribute requests to the page views that caused them, estimate P(asset | page) per
//! request context with decay and without push bias, and select the push sets.
//!
//! The three steps are separate functions so `tune` can estimate once and select many times.

use std::collections::HashMap;
use std::time::Instant;

use crate::error::Error;
use crate::event::{Context, PushMark, as_type};
use crate::store::{EventRow, NewGeneration, PageStat, SetRow, Store};

/// The name of the page-wide estimate in `page_stats.context` and `set_assets.context`.
pub const PAGE_WIDE: &str = "*";

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
    /// Per-page pins and bans: (asset, true for pin / false for ban).
    pub pins: HashMap<String, Vec<(String, bool)>>,
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
                .push((pin.asset, pin.action == "pin"));
        }
        Ok(p)
    }

    fn for_page(&self, page: &str) -> (f64, i64) {
        match self.overrides.get(page) {
            Some((t, m)) => (t.unwrap_or(self.threshold), m.unwrap_or(self.min_support)),
            None => (self.threshold, self.min_support),
        }
    }
}

/// One page view and what it needed.
#[derive(Debug, Clone)]
pub struct View {
    pub page: u32,
    pub ts_ms: i64,
    pub context: Context,
    pub holdout: bool,
    /// Assets the client asked for (2xx or 304), with delay after the page request, deduplicated.
    pub needed: Vec<(u32, i64)>,
    /// Assets pushed, hinted or skipped-as-cached on this view: their need is unknown here.
    pub unknown: Vec<u32>,
}

/// What is known of an asset across all events.
#[derive(Debug, Clone, Default)]
pub struct AssetInfo {
    pub bytes_sum: i64,
    pub bytes_n: i64,
    pub cacheable: bool,
    pub saw_ok: bool,
    pub last_status: u16,
}

impl AssetInfo {
    pub fn typical_bytes(&self) -> i64 {
        if self.bytes_n == 0 {
            0
        } else {
            self.bytes_sum / self.bytes_n
        }
    }
}

/// Page views with interned paths.
#[derive(Debug, Default)]
pub struct Views {
    pub paths: Vec<String>,
    pub info: Vec<AssetInfo>,
    pub views: Vec<View>,
    /// Events that matched no view (ignored), for the summary.
    pub unattributed: usize,
}

struct Interner {
    ids: HashMap<String, u32>,
    paths: Vec<String>,
}

impl Interner {
    fn id(&mut self, p: &str) -> u32 {
        if let Some(&id) = self.ids.get(p) {
            return id;
        }
        let id = self.paths.len() as u32;
        self.paths.push(p.to_string());
        self.ids.insert(p.to_string(), id);
        id
    }
}

fn is_useful_status(s: u16) -> bool {
    (200..300).contains(&s) || s == 304
}

/// Groups events into page views and attributes every other request to the view that caused it:
/// by Referer (a page, or an asset already attributed, so page → CSS → image chains work), else
/// by time on the same connection. Events that match no view are ignored.
pub fn attribute(events: &[EventRow], p: &LearnParams) -> Views {
    let mut interner = Interner {
        ids: HashMap::new(),
        paths: Vec::new(),
    };
    let ids: Vec<u32> = events.iter().map(|e| interner.id(&e.path)).collect();
    let mut info: Vec<AssetInfo> = vec![
        AssetInfo {
            cacheable: true,
            ..Default::default()
        };
        interner.paths.len()
    ];
    for (e, &id) in events.iter().zip(&ids) {
        let i = &mut info[id as usize];
        if PushMark::from_i64(e.push) == PushMark::SkippedDigest
            || PushMark::from_i64(e.push) == PushMark::Hinted
        {
            continue; // not a response
        }
        i.cacheable &= e.cacheable;
        if e.status == 200 {
            i.saw_ok = true;
            i.bytes_sum += e.bytes.max(0);
            i.bytes_n += 1;
        }
        if e.status != 0 {
            i.last_status = e.status;
        }
    }

    // Order by client, then time, then arrival.
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_unstable_by_key(|&i| (events[i].client, events[i].ts_ms, events[i].id));

    let mut views: Vec<View> = Vec::new();
    let mut unattributed = 0;
    let mut start = 0;
    while start < order.len() {
        let client = events[order[start]].client;
        let mut end = start;
        while end < order.len() && events[order[end]].client == client {
            end += 1;
        }
        unattributed +=
            attribute_client(events, &ids, &interner, &order[start..end], p, &mut views);
        start = end;
    }
    for v in &mut views {
        v.unknown.sort_unstable();
        v.unknown.dedup();
        let unknown = &v.unknown;
        v.needed.sort_unstable();
        v.needed.dedup_by_key(|(a, _)| *a);
        v.needed.retain(|(a, _)| unknown.binary_search(a).is_err());
    }
    Views {
        paths: interner.paths,
        info,
        views,
        unattributed,
    }
}

/// Attributes one client's events (sorted by time); returns how many matched no view.
fn attribute_client(
    events: &[EventRow],
    ids: &[u32],
    interner: &Interner,
    idx: &[usize],
    p: &LearnParams,
    views: &mut Vec<View>,
) -> usize {
    let base = views.len();
    // page id -> this client's views of it (indices into `views`, in time order)
    let mut by_page: HashMap<u32, Vec<usize>> = HashMap::new();
    let mut by_conn: HashMap<i64, Vec<usize>> = HashMap::new();
    for &i in idx {
        let e = &events[i];
        if e.is_page && e.push == 0 && is_useful_status(e.status) {
            let vi = views.len();
            let referer_same_site = e.referer.is_some();
            views.push(View {
                page: ids[i],
                ts_ms: e.ts_ms,
                context: Context {
                    browser: e.browser,
                    entry: !referer_same_site,
                },
                holdout: e.holdout,
                needed: Vec::new(),
                unknown: Vec::new(),
            });
            by_page.entry(ids[i]).or_default().push(vi);
            by_conn.entry(e.conn_id).or_default().push(vi);
        }
    }
    if views.len() == base {
        return idx.iter().filter(|&&i| !events[i].is_page).count();
    }
    // asset id -> (ts, view) of this client's attributed requests, for Referer chains
    let mut attributed: HashMap<u32, Vec<(i64, usize)>> = HashMap::new();
    let mut deferred: Vec<usize> = Vec::new();
    let mut unmatched = 0;
    for round in 0..2 {
        let todo: Vec<usize> = if round == 0 {
            idx.iter()
                .copied()
                .filter(|&i| !(events[i].is_page && events[i].push == 0))
                .collect()
        } else {
            std::mem::take(&mut deferred)
        };
        for i in todo {
            let e = &events[i];
            let view = match e.referer.as_deref() {
                Some(r) => {
                    let rid = interner.ids.get(r).copied();
                    let from_page = rid.and_then(|rid| by_page.get(&rid)).and_then(|vs| {
                        pick_view(views, vs, e.ts_ms, p.clock_skew_ms, p.referer_horizon_ms)
                    });
                    let from_asset = || {
                        rid.and_then(|rid| attributed.get(&rid)).and_then(|list| {
                            list.iter()
                                .rev()
                                .find(|(ts, _)| *ts <= e.ts_ms + p.clock_skew_ms)
                                .or_else(|| list.first())
                                .map(|&(_, v)| v)
                        })
                    };
                    match from_page.or_else(from_asset) {
                        Some(v) => Some(v),
                        None if round == 0 => {
                            deferred.push(i);
                            continue;
                        }
                        None => None,
                    }
                }
                None => by_conn
                    .get(&e.conn_id)
                    .and_then(|vs| pick_view(views, vs, e.ts_ms, 1_000, p.window_ms)),
            };
            let Some(v) = view else {
                unmatched += 1;
                continue;
            };
            let asset = ids[i];
            let view = &mut views[v];
            if asset == view.page {
                continue;
            }
            let delay = (e.ts_ms - view.ts_ms).max(0);
            match PushMark::from_i64(e.push) {
                PushMark::Requested => {
                    if is_useful_status(e.status) {
                        view.needed.push((asset, delay));
                    }
                }
                _ => view.unknown.push(asset),
            }
            attributed.entry(asset).or_default().push((e.ts_ms, v));
        }
    }
    unmatched
}

/// The view (from `candidates`, in time order) an event at `ts` belongs to: the latest at or
/// before `ts` within `horizon`, else the earliest logged up to `skew` after it.
fn pick_view(
    views: &[View],
    candidates: &[usize],
    ts: i64,
    skew: i64,
    horizon: i64,
) -> Option<usize> {
    let pos = candidates.partition_point(|&v| views[v].ts_ms <= ts);
    if pos > 0 {
        let v = candidates[pos - 1];
        if ts - views[v].ts_ms <= horizon {
            return Some(v);
        }
    }
    candidates
        .get(pos)
        .copied()
        .filter(|&v| views[v].ts_ms - ts <= skew)
}

/// Decayed counts for one asset of one page in one context.
#[derive(Debug, Clone, Default)]
pub struct AssetEstimate {
    pub hit_w: f64,
    pub hit_n: i64,
    pub unknown_w: f64,
    pub unknown_n: i64,
    pub delays: Vec<i64>,
}

/// Decayed counts for one page in one context (`None` = page-wide).
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
fn probability(weighted: f64, views: i64, a: &AssetEstimate) -> (f64, i64) {
    let denom = weighted - a.unknown_w;
    let support = views - a.unknown_n;
    if denom <= 0.0 || support <= 0 {
        (0.0, support.max(0))
    } else {
        ((a.hit_w / denom).clamp(0.0, 1.0), support)
    }
}

pub type Estimates = HashMap<(u32, Option<Context>), PageEstimate>;

/// Estimates P(asset | page) per context and page-wide, each view weighted by 0.5^(age / half-life).
/// Views where an asset was pushed, hinted or skipped say nothing about that asset and are left
/// out of its denominator: this is what keeps the estimate unbiased by pushpwise's own pushes.
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
        let w = 0.5f64.powf(age / hl);
        for key in [(v.page, Some(v.context)), (v.page, None)] {
            let pe = est.entry(key).or_default();
            pe.views += 1;
            pe.weighted += w;
            for &(a, d) in &v.needed {
                let ae = pe.assets.entry(a).or_default();
                ae.hit_w += w;
                ae.hit_n += 1;
                ae.delays.push(d);
            }
            for &a in &v.unknown {
                let ae = pe.assets.entry(a).or_default();
                ae.unknown_w += w;
                ae.unknown_n += 1;
            }
        }
    }
    est
}

fn median(v: &mut [i64]) -> i64 {
    if v.is_empty() {
        return 0;
    }
    let mid = v.len() / 2;
    *v.select_nth_unstable(mid).1
}

/// Turns estimates into set rows (every candidate, in or out, with the reason) and page stats.
pub fn select(
    views: &Views,
    est: &mut Estimates,
    sp: &SelectParams,
) -> (Vec<PageStat>, Vec<SetRow>) {
    let mut stats = Vec::new();
    let mut rows = Vec::new();
    let mut keys: Vec<(u32, Option<Context>)> = est.keys().copied().collect();
    keys.sort_unstable_by(|a, b| {
        views.paths[a.0 as usize]
            .cmp(&views.paths[b.0 as usize])
            .then(a.1.cmp(&b.1))
    });
    for key in keys {
        let page = &views.paths[key.0 as usize];
        let (threshold, min_support) = sp.for_page(page);
        let pe = est.get_mut(&key).expect("key from map");
        let context = key.1.map_or(PAGE_WIDE, Context::name).to_string();
        let uses_own = key.1.is_none() || pe.views >= min_support;
        stats.push(PageStat {
            page: page.clone(),
            context: context.clone(),
            views: pe.views,
            weighted: pe.weighted,
            uses_own,
        });
        if !uses_own {
            continue;
        }
        let pins = sp.pins.get(page.as_str());
        let mut cands: Vec<(u32, f64, i64, i64)> = Vec::new(); // asset, p, support, delay
        let (weighted, views_n) = (pe.weighted, pe.views);
        for (&a, ae) in pe.assets.iter_mut() {
            if ae.hit_n == 0 {
                // Never needed when observable: not a candidate (unless pinned, below).
                continue;
            }
            let (p, support) = probability(weighted, views_n, ae);
            cands.push((a, p, support, median(&mut ae.delays)));
        }
        // Pinned assets that were never observed still join as candidates.
        if let Some(pins) = pins {
            for (asset, pin) in pins {
                if *pin
                    && !cands.iter().any(|c| views.paths[c.0 as usize] == *asset)
                    && let Some(id) = views.paths.iter().position(|p| p == asset)
                {
                    cands.push((id as u32, 0.0, 0, i64::MAX / 4));
                }
            }
        }
        // What the browser asks for first is pushed first; ties: likelier first, then by name.
        cands.sort_by(|a, b| {
            a.3.cmp(&b.3)
                .then(b.1.total_cmp(&a.1))
                .then(views.paths[a.0 as usize].cmp(&views.paths[b.0 as usize]))
        });
        let mut count = 0usize;
        let mut bytes = 0i64;
        for (pos, (a, p, support, delay)) in cands.into_iter().enumerate() {
            let path = &views.paths[a as usize];
            let info = &views.info[a as usize];
            let b = info.typical_bytes();
            let pin = pins.and_then(|ps| ps.iter().find(|(x, _)| x == path).map(|(_, pin)| *pin));
            let reason = if pin == Some(false) {
                "banned"
            } else if !info.cacheable {
                "not cacheable"
            } else if !info.saw_ok || info.last_status != 200 && info.last_status != 304 {
                "not 200"
            } else if pin != Some(true) && support < min_support {
                "low support"
            } else if pin != Some(true) && p < threshold {
                "below threshold"
            } else if count >= sp.max_count {
                "over count"
            } else if bytes + b > sp.max_bytes {
                "over bytes"
            } else if pin == Some(true) {
                "pinned"
            } else {
                "ok"
            };
            let in_set = reason == "ok" || reason == "pinned";
            if in_set {
                count += 1;
                bytes += b;
            }
            rows.push(SetRow {
                page: page.clone(),
                context: context.clone(),
                asset: path.clone(),
                probability: p,
                support,
                delay_ms: delay.min(i64::MAX / 4),
                bytes: b,
                as_type: as_type(path).to_string(),
                in_set,
                position: pos as i64,
                reason: reason.to_string(),
            });
        }
    }
    (stats, rows)
}

/// What one analyzer pass did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PassReport {
    pub generation: i64,
    pub events: usize,
    pub views: usize,
    pub unattributed: usize,
    pub pages: usize,
    pub pages_with_sets: usize,
    pub assets_in_sets: usize,
    pub duration_ms: u64,
}

/// One full pass: load events, attribute, estimate, select, write a new generation.
pub async fn run_pass(store: &Store, lp: &LearnParams, now_ms: i64) -> Result<PassReport, Error> {
    let started = Instant::now();
    let events = store.load_events(i64::MIN).await?;
    let sp = SelectParams::from_store(store).await?;
    let n_events = events.len();
    let lp2 = lp.clone();
    // The computation is CPU-bound: keep it off the async workers that serve requests.
    let (n_views, unattributed, stats, rows) = tokio::task::spawn_blocking(move || {
        let views = attribute(&events, &lp2);
        drop(events);
        let mut est = estimate(&views.views, now_ms, lp2.half_life_ms);
        let (stats, rows) = select(&views, &mut est, &sp);
        (views.views.len(), views.unattributed, stats, rows)
    })
    .await
    .map_err(|e| Error::invalid(format!("analyzer task failed: {e}")))?;
    let pages = stats.iter().filter(|s| s.context == PAGE_WIDE).count();
    // A page "has a set" when any of its contexts (or the page-wide estimate) pushes something.
    let in_set: std::collections::BTreeSet<(&str, &str)> = rows
        .iter()
        .filter(|r| r.in_set)
        .map(|r| (r.page.as_str(), r.asset.as_str()))
        .collect();
    let pages_with_sets = in_set
        .iter()
        .map(|(p, _)| *p)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let assets_in_sets = in_set.len();
    let duration_ms = started.elapsed().as_millis() as u64;
    let generation = store
        .write_generation(&NewGeneration {
            created_ms: now_ms,
            events: n_events as i64,
            views: n_views as i64,
            duration_ms: duration_ms as i64,
            pages: stats,
            assets: rows,
        })
        .await?;
    Ok(PassReport {
        generation,
        events: n_events,
        views: n_views,
        unattributed,
        pages,
        pages_with_sets,
        assets_in_sets,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny builder of event rows for one client.
    struct Ev {
        rows: Vec<EventRow>,
    }

    impl Ev {
        fn new() -> Self {
            Ev { rows: Vec::new() }
        }
        #[allow(clippy::too_many_arguments)]
        fn add(
            &mut self,
            client: i64,
            conn: i64,
            ts: i64,
            path: &str,
            page: bool,
            referer: Option<&str>,
            push: i64,
            bytes: i64,
        ) -> &mut Self {
            let id = self.rows.len() as i64 + 1;
            self.rows.push(EventRow {
                id,
                ts_ms: ts,
                client,
                conn_id: conn,
                path: path.into(),
                status: 200,
                bytes,
                referer: referer.map(String::from),
                referer_external: false,
                is_page: page,
                browser: true,
                cacheable: true,
                push,
                holdout: false,
            });
            self
        }
        fn page(&mut self, client: i64, ts: i64, path: &str) -> &mut Self {
            self.add(client, client, ts, path, true, None, 0, 3000)
        }
        fn asset(&mut self, client: i64, ts: i64, path: &str, referer: Option<&str>) -> &mut Self {
            self.add(client, client, ts, path, false, referer, 0, 1000)
        }
    }

    fn probability(views: &Views, est: &Estimates, page: &str, asset: &str) -> (f64, i64) {
        let pid = views.paths.iter().position(|p| p == page).unwrap() as u32;
        let aid = views.paths.iter().position(|p| p == asset).unwrap() as u32;
        let pe = &est[&(pid, None)];
        pe.probability(&pe.assets[&aid])
    }

    #[test]
    fn referer_chains_attribute_css_images_to_the_page_view() {
        let mut e = Ev::new();
        e.page(1, 0, "/a.html")
            .asset(1, 100, "/site.css", Some("/a.html"))
            .asset(1, 200, "/bg.png", Some("/site.css"))
            .page(1, 60_000, "/b.html")
            .asset(1, 60_100, "/b.png", Some("/b.html"));
        let v = attribute(&e.rows, &LearnParams::default());
        assert_eq!(v.views.len(), 2);
        let names = |i: usize| -> Vec<&str> {
            v.views[i]
                .needed
                .iter()
                .map(|(a, _)| v.paths[*a as usize].as_str())
                .collect()
        };
        let mut a = names(0);
        a.sort();
        assert_eq!(a, ["/bg.png", "/site.css"]);
        assert_eq!(names(1), ["/b.png"]);
    }

    #[test]
    fn shuffled_seconds_still_attribute_by_referer_and_chain() {
        // The image is logged before its CSS, and both before the page (log aggregation).
        let mut e = Ev::new();
        e.asset(1, 1_000, "/bg.png", Some("/site.css"))
            .asset(1, 2_000, "/site.css", Some("/a.html"))
            .page(1, 3_000, "/a.html");
        let v = attribute(&e.rows, &LearnParams::default());
        assert_eq!(v.views.len(), 1);
        assert_eq!(v.views[0].needed.len(), 2);
    }

    #[test]
    fn time_window_attributes_refererless_requests_on_the_same_connection_only() {
        let mut e = Ev::new();
        e.page(1, 0, "/a.html")
            .asset(1, 5_000, "/near.js", None)
            .asset(1, 30_000, "/late.js", None)
            .add(1, 99, 1_000, "/other-conn.js", false, None, 0, 10);
        let v = attribute(&e.rows, &LearnParams::default());
        let got: Vec<&str> = v.views[0]
            .needed
            .iter()
            .map(|(a, _)| v.paths[*a as usize].as_str())
            .collect();
        assert_eq!(got, ["/near.js"]);
        assert_eq!(v.unattributed, 2);
    }

    #[test]
    fn decay_makes_recent_views_count_more() {
        let day = 86_400_000;
        let mut e = Ev::new();
        // 10 old views fetched /old.png; 10 recent views fetched /new.png.
        for c in 0..10 {
            e.page(c, 0, "/p").asset(c, 10, "/old.png", Some("/p"));
        }
        for c in 10..20 {
            e.page(c, 28 * day, "/p")
                .asset(c, 28 * day + 10, "/new.png", Some("/p"));
        }
        let v = attribute(&e.rows, &LearnParams::default());
        let est = estimate(&v.views, 28 * day, 7 * day);
        let (p_old, _) = probability(&v, &est, "/p", "/old.png");
        let (p_new, _) = probability(&v, &est, "/p", "/new.png");
        // Weights 1/16 vs 1: old = (10/16) / (10/16 + 10) ≈ 0.059, new ≈ 0.94.
        assert!((p_old - 0.0588).abs() < 0.01, "{p_old}");
        assert!((p_new - 0.941).abs() < 0.01, "{p_new}");
    }

    #[test]
    fn pushed_views_do_not_bias_the_estimate() {
        // True need: 40%. Pushed on 90 of 100 views: those say nothing; 10 holdout views decide.
        let mut e = Ev::new();
        for c in 0..100 {
            e.page(c, c * 1000, "/p");
            if c < 90 {
                e.add(c, c, c * 1000 + 1, "/a.css", false, Some("/p"), 1, 500);
            } else if c < 94 {
                e.asset(c, c * 1000 + 5, "/a.css", Some("/p"));
            }
        }
        let v = attribute(&e.rows, &LearnParams::default());
        let est = estimate(&v.views, 100_000, i64::MAX / 4);
        let (p, support) = probability(&v, &est, "/p", "/a.css");
        assert_eq!(support, 10);
        assert!((p - 0.4).abs() < 1e-6, "{p}");
    }

    fn learn_select(e: &Ev, sp: &SelectParams) -> Vec<SetRow> {
        let v = attribute(&e.rows, &LearnParams::default());
        let mut est = estimate(&v.views, 0, i64::MAX / 4);
        select(&v, &mut est, sp)
            .1
            .into_iter()
            .filter(|r| r.context == PAGE_WIDE)
            .collect()
    }

    fn many_views(n: i64, assets: &[(&str, i64, i64)]) -> Ev {
        // assets: (path, views out of n that fetch it, bytes)
        let mut e = Ev::new();
        for c in 0..n {
            e.page(c, 0, "/p");
            for (i, (a, k, b)) in assets.iter().enumerate() {
                if c < *k {
                    e.add(c, c, 10 + i as i64, a, false, Some("/p"), 0, *b);
                }
            }
        }
        e
    }

    #[test]
    fn thresholds_support_and_overrides_decide_membership() {
        let e = many_views(30, &[("/hot.css", 30, 100), ("/warm.js", 12, 100)]);
        let rows = learn_select(&e, &SelectParams::default());
        let r = |n: &str| rows.iter().find(|r| r.asset == n).unwrap().clone();
        assert!(r("/hot.css").in_set);
        assert_eq!(r("/warm.js").reason, "below threshold");
        let mut sp = SelectParams::default();
        sp.overrides.insert("/p".into(), (Some(0.3), None));
        let rows = learn_select(&e, &sp);
        assert!(rows.iter().find(|r| r.asset == "/warm.js").unwrap().in_set);
        let sp = SelectParams {
            min_support: 50,
            ..Default::default()
        };
        let rows = learn_select(&e, &sp);
        assert!(rows.iter().all(|r| r.reason == "low support"));
    }

    #[test]
    fn count_and_byte_caps_keep_the_earliest_assets() {
        let e = many_views(
            25,
            &[
                ("/1.css", 25, 300_000),
                ("/2.js", 25, 300_000),
                ("/3.png", 25, 10),
                ("/4.png", 25, 10),
            ],
        );
        let rows = learn_select(&e, &SelectParams::default());
        let reason = |n: &str| rows.iter().find(|r| r.asset == n).unwrap().reason.clone();
        assert_eq!(reason("/1.css"), "ok");
        assert_eq!(reason("/2.js"), "over bytes");
        assert_eq!(reason("/3.png"), "ok");
        let sp = SelectParams {
            max_count: 2,
            ..Default::default()
        };
        let rows = learn_select(&e, &sp);
        let reason = |n: &str| rows.iter().find(|r| r.asset == n).unwrap().reason.clone();
        assert_eq!(reason("/4.png"), "over count");
    }

    #[test]
    fn pins_and_bans_override_the_estimate() {
        let e = many_views(25, &[("/a.css", 25, 100), ("/b.js", 2, 100)]);
        let mut sp = SelectParams::default();
        sp.pins.insert(
            "/p".into(),
            vec![("/a.css".into(), false), ("/b.js".into(), true)],
        );
        let rows = learn_select(&e, &sp);
        let r = |n: &str| rows.iter().find(|r| r.asset == n).unwrap().clone();
        assert_eq!(r("/a.css").reason, "banned");
        assert!(r("/b.js").in_set);
        assert_eq!(r("/b.js").reason, "pinned");
    }

    #[test]
    fn contexts_with_enough_views_get_their_own_set() {
        // Browsers entering the site fetch the CSS; bots never do.
        let mut e = Ev::new();
        for c in 0..30 {
            e.page(c, 0, "/p").asset(c, 5, "/a.css", Some("/p"));
        }
        for c in 100..160 {
            e.page(c, 0, "/p");
            e.rows.last_mut().unwrap().browser = false;
        }
        let v = attribute(&e.rows, &LearnParams::default());
        let mut est = estimate(&v.views, 0, i64::MAX / 4);
        let (stats, rows) = select(&v, &mut est, &SelectParams::default());
        let own = |ctx: &str| stats.iter().find(|s| s.context == ctx).map(|s| s.uses_own);
        assert_eq!(own("browser/entry"), Some(true));
        assert_eq!(own("other/entry"), Some(true));
        assert!(
            rows.iter()
                .any(|r| r.context == "browser/entry" && r.asset == "/a.css" && r.in_set)
        );
        assert!(!rows.iter().any(|r| r.context == "other/entry" && r.in_set));
        // Page-wide: 30 of 90 views = 0.33 < 0.5: not in the page-wide set.
        assert!(!rows.iter().any(|r| r.context == PAGE_WIDE && r.in_set));
    }
}
