//! One analyzer pass: load events, attribute, estimate, select, and write a new generation.

use std::time::Instant;

use pushwise_store::Store;
use pushwise_store::rows::NewGeneration;

use crate::attribute::attribute;
use crate::error::Error;
use crate::estimate::estimate;
use crate::params::{LearnParams, SelectParams};
use crate::select::select;

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
    let pages = stats.iter().filter(|s| s.context.is_page_wide()).count();
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
