//! Attribution: group recorded requests into page views and tie every other request to the view
//! that caused it (by Referer chains, else by time on the same connection).

use std::collections::HashMap;

pub use pushwise_store::rows::AssetInfo;
use pushwise_store::rows::EventRow;
use pushwise_store::{Context, PushMark, UaClass};

use crate::params::LearnParams;

/// One page view and what it needed.
#[derive(Debug, Clone)]
pub struct View {
    pub page: u32,
    /// The (hashed) client key: `tune` replays each client's cache from it.
    pub client: i64,
    pub ts_ms: i64,
    pub context: Context,
    pub holdout: bool,
    /// Over its network's learning cap ([`pushwise_store::PrefixCap`]): its assets are
    /// attributed to it (so they are not taken for another view's) but it teaches nothing.
    pub over_cap: bool,
    /// Assets the client asked for (2xx or 304), with delay after the page request, deduplicated.
    pub needed: Vec<(u32, i64)>,
    /// Assets pushed, hinted or skipped-as-cached on this view: their need is unknown here.
    pub unknown: Vec<u32>,
    /// The client took an asset whose need is unknown here: it asked for one it was hinted, or
    /// accepted a push (for the quiet-client rule, [`pushwise_store::quiet`]).
    pub took_unknown: bool,
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

/// Paths interned as small ids (pages and assets share one id space).
#[derive(Debug, Default)]
pub struct Names {
    ids: HashMap<String, u32>,
    pub names: Vec<String>,
}

impl Names {
    pub fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), id);
        id
    }

    pub fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }
}

fn is_useful_status(s: u16) -> bool {
    (200..300).contains(&s) || s == 304
}

/// A page request the client made itself (not a push mark): it opens a view.
fn opens_view(e: &EventRow) -> bool {
    e.is_page && e.push == 0
}

/// What every event says about its path: size, cacheability, last status.
fn asset_info(events: &[EventRow], ids: &[u32], n_paths: usize) -> Vec<AssetInfo> {
    let mut info = vec![AssetInfo::unseen(); n_paths];
    for (e, &id) in events.iter().zip(ids) {
        info[id as usize].add(e);
    }
    info
}

/// Groups events into page views and attributes every other request to the view that caused it:
/// by Referer (a page, or an asset already attributed, so page → CSS → image chains work), else
/// by time on the same connection. Events that match no view are ignored.
pub fn attribute(events: &[EventRow], p: &LearnParams) -> Views {
    let mut names = Names::default();
    let ids: Vec<u32> = events.iter().map(|e| names.id(&e.path)).collect();
    let info = asset_info(events, &ids, names.names.len());
    let (views, unattributed) = attribute_ids(events, &ids, &names, p);
    Views {
        paths: names.names,
        info,
        views,
        unattributed,
    }
}

/// [`attribute`] with paths interned in `names`, shared across calls (the incremental learner
/// attributes one session at a time). Returns the views and how many requests matched none.
pub fn attribute_with(
    events: &[EventRow],
    p: &LearnParams,
    names: &mut Names,
) -> (Vec<View>, usize) {
    let ids: Vec<u32> = events.iter().map(|e| names.id(&e.path)).collect();
    attribute_ids(events, &ids, names, p)
}

fn attribute_ids(
    events: &[EventRow],
    ids: &[u32],
    names: &Names,
    p: &LearnParams,
) -> (Vec<View>, usize) {
    // Order by client, then time, then arrival; only what may be learned from (no POSTs, no
    // error responses).
    let mut order: Vec<usize> = (0..events.len())
        .filter(|&i| events[i].learnable())
        .collect();
    order.sort_unstable_by_key(|&i| (events[i].client, events[i].ts_ms, events[i].id));

    let mut views: Vec<View> = Vec::new();
    let mut unattributed = 0;
    for client in order.chunk_by(|&a, &b| events[a].client == events[b].client) {
        let mut c = Client {
            events,
            ids,
            names,
            p,
            views: &mut views,
            by_page: HashMap::new(),
            by_conn: HashMap::new(),
            attributed: HashMap::new(),
        };
        unattributed += c.attribute(client);
    }
    for v in &mut views {
        v.unknown.sort_unstable();
        v.unknown.dedup();
        let unknown = &v.unknown;
        v.took_unknown |= v
            .needed
            .iter()
            .any(|(a, _)| unknown.binary_search(a).is_ok());
        v.needed.sort_unstable();
        v.needed.dedup_by_key(|(a, _)| *a);
        v.needed.retain(|(a, _)| unknown.binary_search(a).is_err());
    }
    (views, unattributed)
}

/// One client's events being attributed, with its indexes of views and attributed assets.
struct Client<'a> {
    events: &'a [EventRow],
    ids: &'a [u32],
    names: &'a Names,
    p: &'a LearnParams,
    views: &'a mut Vec<View>,
    /// page id -> this client's views of it (indices into `views`, in time order)
    by_page: HashMap<u32, Vec<usize>>,
    by_conn: HashMap<i64, Vec<usize>>,
    /// asset id -> (ts, view) of this client's attributed requests, for Referer chains
    attributed: HashMap<u32, Vec<(i64, usize)>>,
}

impl Client<'_> {
    /// Attributes one client's events (sorted by time); returns how many matched no view.
    fn attribute(&mut self, idx: &[usize]) -> usize {
        let base = self.views.len();
        self.open_views(idx);
        if self.views.len() == base {
            return idx.iter().filter(|&&i| !self.events[i].is_page).count();
        }
        let first: Vec<usize> = idx
            .iter()
            .copied()
            .filter(|&i| !opens_view(&self.events[i]))
            .collect();
        // A Referer may name an asset attributed later in time order (shuffled logs): what finds
        // no view in the first round gets a second chance once the rest is attributed.
        let (mut unmatched, deferred) = self.attach_all(first, true);
        unmatched += self.attach_all(deferred, false).0;
        unmatched
    }

    /// Opens a view for each page request.
    fn open_views(&mut self, idx: &[usize]) {
        for &i in idx {
            let e = &self.events[i];
            if !(opens_view(e) && is_useful_status(e.status)) {
                continue;
            }
            let vi = self.views.len();
            self.views.push(View {
                page: self.ids[i],
                client: e.client,
                ts_ms: e.ts_ms,
                context: Context::from_parts(UaClass::from_browser(e.browser), e.referer.is_none()),
                holdout: e.holdout,
                over_cap: e.over_cap,
                needed: Vec::new(),
                unknown: Vec::new(),
                took_unknown: false,
            });
            self.by_page.entry(self.ids[i]).or_default().push(vi);
            self.by_conn.entry(e.conn_id).or_default().push(vi);
        }
    }

    /// Attaches each event to its view. Returns (unmatched, deferred): with `may_defer`, an event
    /// whose Referer finds no view yet is deferred instead of counted as unmatched.
    fn attach_all(&mut self, todo: Vec<usize>, may_defer: bool) -> (usize, Vec<usize>) {
        let mut unmatched = 0;
        let mut deferred = Vec::new();
        let events = self.events;
        for i in todo {
            let e = &events[i];
            let view = match e.referer.as_deref() {
                Some(r) => match self.view_by_referer(r, e.ts_ms) {
                    None if may_defer => {
                        deferred.push(i);
                        continue;
                    }
                    v => v,
                },
                None => self
                    .by_conn
                    .get(&e.conn_id)
                    .and_then(|vs| pick_view(self.views, vs, e.ts_ms, 1_000, self.p.window_ms)),
            };
            match view {
                Some(v) => self.attach(i, v),
                None => unmatched += 1,
            }
        }
        (unmatched, deferred)
    }

    /// The view a request with Referer `r` at `ts` belongs to: a view of the page it names, else
    /// the view of the asset it names (page → CSS → image chains).
    fn view_by_referer(&self, r: &str, ts: i64) -> Option<usize> {
        let p = self.p;
        let rid = self.names.get(r)?;
        let from_page = self
            .by_page
            .get(&rid)
            .and_then(|vs| pick_view(self.views, vs, ts, p.clock_skew_ms, p.referer_horizon_ms));
        from_page.or_else(|| {
            let list = self.attributed.get(&rid)?;
            list.iter()
                .rev()
                .find(|(t, _)| *t <= ts + p.clock_skew_ms)
                .or_else(|| list.first())
                .map(|&(_, v)| v)
        })
    }

    /// Records event `i` as needed (or unknown, when pushed/hinted/skipped) by view `v`.
    fn attach(&mut self, i: usize, v: usize) {
        let e = &self.events[i];
        let asset = self.ids[i];
        let view = &mut self.views[v];
        if asset == view.page {
            return;
        }
        let delay = (e.ts_ms - view.ts_ms).max(0);
        match PushMark::from_i64(e.push) {
            PushMark::Requested => {
                if is_useful_status(e.status) {
                    view.needed.push((asset, delay));
                }
            }
            mark => {
                view.took_unknown |= mark == PushMark::Pushed;
                view.unknown.push(asset);
            }
        }
        self.attributed.entry(asset).or_default().push((e.ts_ms, v));
    }
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
