//! `pushwise tune`: replay the recorded traffic (learn on the older part, score on the newer, each
//! client's cache replayed) over a grid of thresholds, minimum supports and caps, and recommend
//! one setting by a stated objective.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use pushwise_store::quiet::{Activity, QuietAfter};
use pushwise_store::rows::{PageStat, SetRow};
use pushwise_store::{PushSets, Store};

use crate::attribute::{Names, View, Views, attribute_with};
use crate::error::Error;
use crate::estimate::estimate;
use crate::params::{LearnParams, SelectParams};
use crate::pass::views_for_selection;
use crate::select::select;
use crate::tally::InfoTally;

/// The probability thresholds tried.
pub const THRESHOLDS: [f64; 19] = [
    0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80,
    0.85, 0.90, 0.95,
];
/// The minimum supports tried.
pub const MIN_SUPPORTS: [i64; 8] = [1, 2, 3, 5, 10, 20, 30, 50];
/// The count caps tried (around the best threshold and support).
pub const MAX_COUNTS: [usize; 6] = [2, 4, 8, 16, 32, 64];
/// The byte caps tried (around the best threshold and support).
pub const MAX_BYTES: [i64; 5] = [64 << 10, 256 << 10, 512 << 10, 2 << 20, 8 << 20];
/// The quiet-client settings tried (with the caps): off, after one quiet view, after two.
pub const QUIET_AFTER: [u16; 3] = [0, 1, 2];

/// How the recommendation is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Best F1 of precision and recall; ties go to the fewer wasted bytes.
    F1,
    /// Most needed bytes pushed per wasted byte, among settings that keep recall ≥ 0.5.
    BytesRatio,
}

impl Objective {
    pub fn rule(self) -> &'static str {
        match self {
            Objective::F1 => {
                "highest F1 of precision and recall on the newer part; ties: fewer wasted bytes per view, then the higher threshold"
            }
            Objective::BytesRatio => {
                "most needed bytes pushed per wasted byte among settings with recall >= 0.5; ties: higher recall"
            }
        }
    }
}

/// The score of one setting (threshold, min support, caps) on the newer part of the data.
#[derive(Debug, Clone, Serialize)]
pub struct TunePoint {
    pub threshold: f64,
    pub min_support: i64,
    pub max_count: usize,
    pub max_bytes: i64,
    /// Clients held back after this many quiet views (0: never).
    pub quiet_after: u16,
    /// Pushed assets that the view then needed.
    pub precision: f64,
    /// Needed assets that were pushed.
    pub recall: f64,
    pub f1: f64,
    pub pushed_per_view: f64,
    pub wasted_bytes_per_view: f64,
    pub needed_bytes_pushed_per_view: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TuneReport {
    /// The replay reads only the newest events: this many at most, from this event id on.
    pub window_events: i64,
    pub from_event_id: i64,
    pub train_views: usize,
    pub test_views: usize,
    pub split_ms: i64,
    /// How the newer part is scored.
    pub scoring: &'static str,
    pub objective: Objective,
    pub rule: &'static str,
    pub recommended: Option<TunePoint>,
    pub grid: Vec<TunePoint>,
}

/// What the score counts, for the report.
pub const SCORING: &str = "each newer page view gets the set the server would push (same back-off, nothing for crawlers, \
nothing for a client the quiet-client rule holds back after its earlier views); \
an asset the same client fetched in an earlier view is in its cache digest, so it is neither pushed nor needed";

/// The default number of newest events `tune` replays (memory stays bounded by it).
pub const WINDOW_EVENTS: i64 = 500_000;

/// Replays the newest `window_events` events: learns on the oldest `train_share` of their page
/// views, scores the rest.
pub async fn tune(
    store: &Store,
    lp: &LearnParams,
    objective: Objective,
    train_share: f64,
    window_events: i64,
) -> Result<TuneReport, Error> {
    if !(0.05..=0.95).contains(&train_share) {
        return Err(Error::invalid(
            "the training share must be between 0.05 and 0.95",
        ));
    }
    if window_events < 1 {
        return Err(Error::invalid(
            "the tune window must hold at least one event",
        ));
    }
    let newest = store.max_event_id().await?;
    let from = (newest - window_events).max(0);
    let views = attribute_window(store, lp, from, newest - from, EVENTS_AT_ONCE).await?;
    let base = SelectParams::from_store(store).await?;
    let mut report = tune_views(&views, lp, &base, objective, train_share);
    report.window_events = window_events;
    report.from_event_id = from + 1;
    Ok(report)
}

/// At most this many events of the window are held in memory at once.
const EVENTS_AT_ONCE: i64 = 125_000;

/// Attributes the `events` events after `from` to page views in bounded memory (about `at_once`
/// events held at a time): the clients are split into buckets by their key, and each bucket's
/// events are read and attributed in turn (attribution never looks across clients), so memory
/// holds one bucket's events and every bucket's views, which are far smaller. What each path's responses said is
/// gathered from every event on the first read.
pub(crate) async fn attribute_window(
    store: &Store,
    lp: &LearnParams,
    from: i64,
    events: i64,
    at_once: i64,
) -> Result<Views, Error> {
    let buckets = (events.max(1) as u64).div_ceil(at_once.max(1) as u64);
    let (mut names, mut info) = (Names::default(), InfoTally::default());
    let (mut views, mut unattributed) = (Vec::new(), 0);
    for b in 0..buckets {
        let events = store
            .load_events_after_where(from, |e| {
                if b == 0 {
                    info.add(e);
                }
                (e.client as u64) % buckets == b
            })
            .await?;
        let (mut v, u) = attribute_with(&events, lp, &mut names);
        views.append(&mut v);
        unattributed += u;
    }
    let mut out = views_for_selection(names, info.into_rows());
    out.views = views;
    out.unattributed = unattributed;
    Ok(out)
}

/// The replay itself, on views already attributed (separate so tests can call it directly).
///
/// The grid is searched by coordinates: every (threshold, min support) at the operator's caps,
/// then every (count cap, byte cap, quiet-client setting) at the best of those, then every
/// (threshold, min support) again at the best caps. Every point tried is in the report.
pub fn tune_views(
    views: &Views,
    lp: &LearnParams,
    base: &SelectParams,
    objective: Objective,
    train_share: f64,
) -> TuneReport {
    let mut times: Vec<i64> = views.views.iter().map(|v| v.ts_ms).collect();
    times.sort_unstable();
    let split_ms = times
        .get(((times.len() as f64) * train_share) as usize)
        .copied()
        .unwrap_or(i64::MAX);
    let train: Vec<&View> = views.views.iter().filter(|v| v.ts_ms < split_ms).collect();
    let replay = Replay::new(views, split_ms);
    let mut grid = Vec::new();
    let mut recommended = None;
    if !train.is_empty() && !replay.test.is_empty() {
        let est = estimate(train.iter().copied(), split_ms, lp.half_life_ms);
        let try_point = |sp: SelectParams, grid: &mut Vec<TunePoint>| {
            let (stats, rows) = select(views, &est, &sp);
            grid.push(replay.score(&sp, stats, rows));
        };
        let with = |t: f64, ms: i64, (mc, mb, q): (usize, i64, QuietAfter)| SelectParams {
            threshold: t,
            min_support: ms,
            max_count: mc,
            max_bytes: mb,
            quiet_after: q,
            overrides: HashMap::new(),
            ..base.clone()
        };
        let first = (base.max_count, base.max_bytes, base.quiet_after);
        let mut best = first;
        for round in 0..3 {
            let from = grid.len();
            if round == 1 {
                let r = recommend(&grid, objective);
                let (t, ms) = r.map_or((base.threshold, base.min_support), |r| {
                    (r.threshold, r.min_support)
                });
                for &q in &QUIET_AFTER {
                    let q = QuietAfter::new(i64::from(q)).unwrap_or(QuietAfter::OFF);
                    for &mc in &MAX_COUNTS {
                        for &mb in &MAX_BYTES {
                            try_point(with(t, ms, (mc, mb, q)), &mut grid);
                        }
                    }
                }
                if let Some(r) = recommend(&grid[from..], objective) {
                    let q = QuietAfter::new(i64::from(r.quiet_after)).unwrap_or(QuietAfter::OFF);
                    best = (r.max_count, r.max_bytes, q);
                }
                continue;
            }
            if round == 2 && best == first {
                break; // the first round already tried these caps
            }
            for &ms in &MIN_SUPPORTS {
                for &t in &THRESHOLDS {
                    try_point(with(t, ms, best), &mut grid);
                }
            }
        }
        recommended = recommend(&grid, objective);
    }
    TuneReport {
        window_events: i64::MAX,
        from_event_id: 1,
        train_views: train.len(),
        test_views: replay.test.len(),
        split_ms,
        scoring: SCORING,
        objective,
        rule: objective.rule(),
        recommended,
        grid,
    }
}

/// One newer page view as the score sees it.
struct TestView {
    /// What it needed that the client did not already have.
    need: HashSet<u32>,
    /// What the client fetched in earlier views: in its cache digest, so never pushed.
    have: HashSet<u32>,
}

/// The newer page views, each with its client's cache replayed, and path ids for scoring.
struct Replay<'a> {
    views: &'a Views,
    ids: HashMap<&'a str, u32>,
    test: Vec<TestView>,
    /// Every view, older ones too, by client and time: whether it starts a client, and its index
    /// in `test` if it is scored (the quiet-client rule replays each client's history).
    steps: Vec<(&'a View, bool, Option<usize>)>,
}

impl<'a> Replay<'a> {
    fn new(views: &'a Views, split_ms: i64) -> Replay<'a> {
        let ids = views
            .paths
            .iter()
            .enumerate()
            .map(|(i, p)| (p.as_str(), i as u32))
            .collect();
        let mut order: Vec<&View> = views.views.iter().collect();
        order.sort_by_key(|v| (v.client, v.ts_ms));
        let (mut test, mut steps) = (Vec::new(), Vec::new());
        for client in order.chunk_by(|a, b| a.client == b.client) {
            let mut have: HashSet<u32> = HashSet::new();
            for (i, v) in client.iter().enumerate() {
                let scored = (v.ts_ms >= split_ms).then_some(test.len());
                steps.push((*v, i == 0, scored));
                if v.ts_ms >= split_ms {
                    let need = v
                        .needed
                        .iter()
                        .map(|&(a, _)| a)
                        .filter(|a| !have.contains(a))
                        .collect();
                    test.push(TestView {
                        need,
                        have: have.clone(),
                    });
                }
                have.extend(v.needed.iter().map(|&(a, _)| a));
            }
        }
        Replay {
            views,
            ids,
            test,
            steps,
        }
    }

    /// Scores one setting's sets on the newer views, through the server's own [`PushSets`].
    fn score(&self, sp: &SelectParams, stats: Vec<PageStat>, rows: Vec<SetRow>) -> TunePoint {
        let sets = PushSets::new();
        sets.replace(1, PushSets::plans_from_rows(rows, stats));
        let (mut tp, mut pushed, mut needed, mut wasted_b, mut needed_b) =
            (0u64, 0u64, 0u64, 0f64, 0f64);
        let mut activity = Activity::default();
        for &(v, new_client, scored) in &self.steps {
            if new_client {
                activity = Activity::default();
            }
            let d = sets.decide(&self.views.paths[v.page as usize], v.context);
            // The server's rule: the view was offered the set; did the client take any of it?
            let quiet = !d.assets.is_empty() && {
                let took = v.took_unknown
                    || d.assets.iter().any(|a| {
                        self.ids.get(a.path.as_str()).is_some_and(|&id| {
                            v.needed.binary_search_by_key(&id, |&(n, _)| n).is_ok()
                        })
                    });
                activity.replay_view(Some(v.ts_ms), sp.quiet_after, Some(took))
            };
            let Some(t) = scored.map(|i| &self.test[i]) else {
                continue;
            };
            needed += t.need.len() as u64;
            if quiet {
                continue; // held back: nothing pushed or hinted
            }
            for asset in d.assets.iter() {
                let Some(&a) = self.ids.get(asset.path.as_str()) else {
                    continue;
                };
                if t.have.contains(&a) || v.unknown.binary_search(&a).is_ok() {
                    continue; // in the client's digest, or its need is not observable here
                }
                pushed += 1;
                let b = self.views.info[a as usize].typical_bytes() as f64;
                if t.need.contains(&a) {
                    tp += 1;
                    needed_b += b;
                } else {
                    wasted_b += b;
                }
            }
        }
        let n = self.test.len().max(1) as f64;
        let precision = if pushed == 0 {
            0.0
        } else {
            tp as f64 / pushed as f64
        };
        let recall = if needed == 0 {
            0.0
        } else {
            tp as f64 / needed as f64
        };
        TunePoint {
            threshold: sp.threshold,
            min_support: sp.min_support,
            max_count: sp.max_count,
            max_bytes: sp.max_bytes,
            quiet_after: sp.quiet_after.get(),
            precision,
            recall,
            f1: f1(precision, recall),
            pushed_per_view: pushed as f64 / n,
            wasted_bytes_per_view: wasted_b / n,
            needed_bytes_pushed_per_view: needed_b / n,
        }
    }
}

/// The harmonic mean of precision and recall (0 when both are).
pub fn f1(precision: f64, recall: f64) -> f64 {
    if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    }
}

fn recommend(grid: &[TunePoint], objective: Objective) -> Option<TunePoint> {
    match objective {
        Objective::F1 => grid
            .iter()
            .filter(|p| p.pushed_per_view > 0.0)
            .max_by(|a, b| {
                a.f1.total_cmp(&b.f1)
                    .then(b.wasted_bytes_per_view.total_cmp(&a.wasted_bytes_per_view))
                    .then(a.threshold.total_cmp(&b.threshold))
            })
            .cloned(),
        Objective::BytesRatio => grid
            .iter()
            .filter(|p| p.recall >= 0.5)
            .max_by(|a, b| {
                let ra = a.needed_bytes_pushed_per_view / a.wasted_bytes_per_view.max(1.0);
                let rb = b.needed_bytes_pushed_per_view / b.wasted_bytes_per_view.max(1.0);
                ra.total_cmp(&rb).then(a.recall.total_cmp(&b.recall))
            })
            .cloned(),
    }
}

/// The SVG chart of precision, recall and waste against the threshold, at the recommended support.
pub fn plot(report: &TuneReport) -> String {
    let ms = report
        .recommended
        .as_ref()
        .map_or(MIN_SUPPORTS[0], |r| r.min_support);
    let (mc, mb) = report
        .recommended
        .as_ref()
        .map_or((0, 0), |r| (r.max_count, r.max_bytes));
    let pts: Vec<&TunePoint> = report
        .grid
        .iter()
        .filter(|p| {
            p.min_support == ms
                && (report.recommended.is_none() || (p.max_count, p.max_bytes) == (mc, mb))
        })
        .collect();
    let series = [
        crate::svg::Series {
            name: "precision",
            color: "#1f77b4",
            points: pts.iter().map(|p| (p.threshold, p.precision)).collect(),
            right_axis: false,
        },
        crate::svg::Series {
            name: "recall",
            color: "#2ca02c",
            points: pts.iter().map(|p| (p.threshold, p.recall)).collect(),
            right_axis: false,
        },
        crate::svg::Series {
            name: "wasted bytes per view (right axis)",
            color: "#d62728",
            points: pts
                .iter()
                .map(|p| (p.threshold, p.wasted_bytes_per_view))
                .collect(),
            right_axis: true,
        },
    ];
    crate::svg::line_chart(
        &format!("pushwise tune: min support {ms}"),
        "probability threshold",
        "wasted bytes per page view",
        &series,
        report.recommended.as_ref().map(|r| r.threshold),
    )
}
