//! `pushwise tune`: replay the recorded traffic (learn on the older part, score on the newer) over a
//! grid of thresholds and minimum supports, and recommend one by a stated objective.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use pushwise_store::rows::{PageStat, SetRow};
use pushwise_store::sets::pick;
use pushwise_store::{Context, Store};

use crate::attribute::{View, Views, attribute};
use crate::error::Error;
use crate::estimate::estimate;
use crate::params::{LearnParams, SelectParams};
use crate::select::select;

/// The probability thresholds tried.
pub const THRESHOLDS: [f64; 19] = [
    0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80,
    0.85, 0.90, 0.95,
];
/// The minimum supports tried.
pub const MIN_SUPPORTS: [i64; 8] = [1, 2, 3, 5, 10, 20, 30, 50];

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

/// The score of one (threshold, min support) setting on the newer part of the data.
#[derive(Debug, Clone, Serialize)]
pub struct TunePoint {
    pub threshold: f64,
    pub min_support: i64,
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
    pub objective: Objective,
    pub rule: &'static str,
    pub recommended: Option<TunePoint>,
    pub grid: Vec<TunePoint>,
}

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
    let from = (store.max_event_id().await? - window_events).max(0);
    let events = store.load_events_after(from).await?;
    let views = attribute(&events, lp);
    drop(events);
    let base = SelectParams::from_store(store).await?;
    let mut report = tune_views(&views, lp, &base, objective, train_share);
    report.window_events = window_events;
    report.from_event_id = from + 1;
    Ok(report)
}

/// The replay itself, on views already attributed (separate so tests can call it directly).
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
    let test: Vec<&View> = views.views.iter().filter(|v| v.ts_ms >= split_ms).collect();
    let mut grid = Vec::new();
    if !train.is_empty() && !test.is_empty() {
        let est = estimate(train.iter().copied(), split_ms, lp.half_life_ms);
        let ids: HashMap<&str, u32> = views
            .paths
            .iter()
            .enumerate()
            .map(|(i, p)| (p.as_str(), i as u32))
            .collect();
        for &min_support in &MIN_SUPPORTS {
            for &threshold in &THRESHOLDS {
                let sp = SelectParams {
                    threshold,
                    min_support,
                    overrides: HashMap::new(),
                    ..base.clone()
                };
                let (stats, rows) = select(views, &est, &sp);
                grid.push(score(
                    views,
                    &ids,
                    &test,
                    &stats,
                    &rows,
                    threshold,
                    min_support,
                ));
            }
        }
    }
    let recommended = recommend(&grid, objective);
    TuneReport {
        window_events: i64::MAX,
        from_event_id: 1,
        train_views: train.len(),
        test_views: test.len(),
        split_ms,
        objective,
        rule: objective.rule(),
        recommended,
        grid,
    }
}

/// Scores one setting's sets on the test views. `ids` maps each path to its interned id (built
/// once per replay, not once per grid point).
fn score(
    views: &Views,
    ids: &HashMap<&str, u32>,
    test: &[&View],
    stats: &[PageStat],
    rows: &[SetRow],
    threshold: f64,
    min_support: i64,
) -> TunePoint {
    let mut sets: HashMap<(u32, Context), Vec<u32>> = HashMap::new();
    for r in rows.iter().filter(|r| r.in_set) {
        sets.entry((ids[r.page.as_str()], r.context))
            .or_default()
            .push(ids[r.asset.as_str()]);
    }
    let own: HashSet<(u32, Context)> = stats
        .iter()
        .filter(|s| s.uses_own && !s.context.is_page_wide())
        .map(|s| (ids[s.page.as_str()], s.context))
        .collect();
    let (mut tp, mut pushed, mut needed, mut wasted_b, mut needed_b) =
        (0u64, 0u64, 0u64, 0f64, 0f64);
    let empty = Vec::new();
    for v in test {
        // The set the server would push for this view: the same rule as `PushSets::decide`.
        let own_set = own
            .contains(&(v.page, v.context))
            .then(|| sets.get(&(v.page, v.context)).unwrap_or(&empty));
        let page_wide = sets.get(&(v.page, Context::PageWide)).unwrap_or(&empty);
        let set = pick(own_set, Some(page_wide)).1.unwrap_or(&empty);
        let need: HashSet<u32> = v.needed.iter().map(|&(a, _)| a).collect();
        needed += need.len() as u64;
        for a in set {
            if v.unknown.binary_search(a).is_ok() {
                continue; // its need is not observable in this view
            }
            pushed += 1;
            let b = views.info[*a as usize].typical_bytes() as f64;
            if need.contains(a) {
                tp += 1;
                needed_b += b;
            } else {
                wasted_b += b;
            }
        }
    }
    let n = test.len().max(1) as f64;
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
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    TunePoint {
        threshold,
        min_support,
        precision,
        recall,
        f1,
        pushed_per_view: pushed as f64 / n,
        wasted_bytes_per_view: wasted_b / n,
        needed_bytes_pushed_per_view: needed_b / n,
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
    let pts: Vec<&TunePoint> = report.grid.iter().filter(|p| p.min_support == ms).collect();
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
