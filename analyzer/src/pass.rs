//! One analyzer pass: read the events that are new since the last pass (and those of sessions
//! still open), fold the sessions that closed into the store's decayed counts, and write a new
//! generation of push sets selected from those counts plus the open sessions.
//!
//! A pass costs what is new: it never reads the events already counted, and its memory is bounded
//! by the counts (pages × contexts × assets) and the clients active within a session gap.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use pushwise_store::rows::{NewGeneration, PageStat, SetRow};
use pushwise_store::{Counts, Dictionary, Fold, LearnState, Store};

use crate::attribute::{AssetInfo, Names, Views};
use crate::error::Error;
use crate::params::{LearnParams, SelectParams};
use crate::select::select;
use crate::sessions::Sessions;
use crate::tally::Tally;
use pushwise_store::context::is_section;

/// Events read from the store per page.
const PAGE: i64 = 20_000;

/// What one analyzer pass did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PassReport {
    pub generation: i64,
    /// Events read for the first time.
    pub events: usize,
    /// Events of still-open sessions read again.
    pub events_again: usize,
    /// Page views folded into the stored counts by this pass (their sessions closed).
    pub views: usize,
    /// Page views of sessions still open: in this generation's estimate, counted for good later.
    pub views_open: usize,
    pub unattributed: usize,
    pub pages: usize,
    pub pages_with_sets: usize,
    pub assets_in_sets: usize,
    /// The highest event id read.
    pub watermark: i64,
    /// False when the sets equal the newest generation's: then none is written and `generation`
    /// is that one.
    pub generation_written: bool,
    pub duration_ms: u64,
}

/// How a pass reports its reading progress: events read so far and the highest id to read.
pub type Progress<'a> = &'a mut (dyn FnMut(i64, i64) + Send);

/// One incremental pass at wall-clock time `now_ms`.
pub async fn run_pass(store: &Store, lp: &LearnParams, now_ms: i64) -> Result<PassReport, Error> {
    run_pass_with(store, lp, now_ms, &mut |_, _| {}).await
}

/// Forgets the counts and counts every retained event again (after changing the half-life or the
/// attribution window), in the same bounded memory as any pass.
pub async fn rebuild(
    store: &Store,
    lp: &LearnParams,
    now_ms: i64,
    progress: Progress<'_>,
) -> Result<PassReport, Error> {
    locked(store, async {
        store.reset_learning().await?;
        pass(store, lp, now_ms, progress).await
    })
    .await
}

/// [`run_pass`] with a progress callback.
pub async fn run_pass_with(
    store: &Store,
    lp: &LearnParams,
    now_ms: i64,
    progress: Progress<'_>,
) -> Result<PassReport, Error> {
    locked(store, pass(store, lp, now_ms, progress)).await
}

/// Runs `work` holding the store's analyzer lock, or fails with [`Error::is_busy`] without
/// running it. One pass at a time across a fleet: a second pass over the same watermark would
/// count the same events twice.
async fn locked<T>(
    store: &Store,
    work: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let lock = store.try_analyzer_lock().await?.ok_or_else(Error::busy)?;
    let result = work.await;
    lock.release().await;
    result
}

async fn pass(
    store: &Store,
    lp: &LearnParams,
    now_ms: i64,
    progress: Progress<'_>,
) -> Result<PassReport, Error> {
    let started = Instant::now();
    let state = match store.learn_state().await? {
        Some(s) => {
            check_params(&s, lp)?;
            s
        }
        None => LearnState {
            half_life_ms: lp.half_life_ms,
            window_ms: lp.window_ms,
            ..Default::default()
        },
    };
    let done = store.sources_done().await?;
    // The stored counts are read while the events are: no one else folds during a pass (the
    // analyzer lock), so what this reads is exactly what the fold below adds to.
    let stored = tokio::spawn({
        let store = store.clone();
        async move { store.learn_counts().await }
    });
    let read = Reading {
        closed: Tally::new(state.ref_ms, lp.half_life_ms),
        names: Names::default(),
        watermark: state.watermark,
        sessions: Sessions::new(lp.clone(), state.watermark, state.open, state.clocks),
    };
    let Reading {
        sessions,
        mut closed,
        mut names,
        watermark,
    } = read.read_all(store, progress).await?;
    let read_ms = started.elapsed().as_millis();
    let (events_new, events_again) = (sessions.events_new, sessions.events_again);
    let finished = sessions.finish(now_ms, &done, &mut closed, &mut names);
    let closed_ms = started.elapsed().as_millis();
    // Open sessions are tallied at the stored reference time, which must stay near enough to
    // them for their weights to be representable.
    if let Some(newest) = finished.open.iter().flatten().map(|e| e.ts_ms).max() {
        closed.keep_near(newest);
    }
    let mut open = Tally::new(closed.ref_ms, lp.half_life_ms);
    for events in &finished.open {
        open.add_session(events, lp, &mut names, false);
    }
    let (views, assets) = closed.rows(&names);
    let state = LearnState {
        watermark,
        ref_ms: closed.ref_ms,
        half_life_ms: lp.half_life_ms,
        window_ms: lp.window_ms,
        open: finished.reopen(),
        clocks: finished.clocks,
    };
    let (rescale, info) = (closed.rescale, finished.info.into_rows());
    let fold = Fold {
        state,
        rescale,
        views,
        assets,
        info,
    };
    let tallied_ms = started.elapsed().as_millis();
    let mut counts = stored.await.map_err(task_failed)??;
    let counts_ms = started.elapsed().as_millis();
    fold.apply_to(&mut counts);
    tracing::debug!(
        read_ms,
        closed_ms,
        tallied_ms,
        counts_ms,
        views = fold.views.len(),
        assets = fold.assets.len(),
        "analyzer pass: events read and tallied, counts read"
    );
    // The fold is written while selection runs on what it will have written (driven by this task,
    // not spawned: a pass that is dropped rolls its fold back rather than leaving it running).
    let folding = async move { store.fold(&fold).await };
    let report = PassReport {
        events: events_new,
        events_again,
        views: closed.views,
        views_open: open.views,
        unattributed: closed.unattributed,
        watermark,
        ..Default::default()
    };
    select_and_write(store, open, counts, names, report, folding, started, now_ms).await
}

fn task_failed(e: tokio::task::JoinError) -> Error {
    Error::invalid(format!("analyzer task failed: {e}"))
}

/// The pass's state while it reads the event log.
struct Reading {
    sessions: Sessions,
    closed: Tally,
    names: Names,
    watermark: i64,
}

impl Reading {
    /// Reads every event from the open sessions' first one on, in pages, feeding the sessions.
    async fn read_all(mut self, store: &Store, progress: Progress<'_>) -> Result<Reading, Error> {
        let last = store.max_event_id().await?;
        let mut after = self.sessions.read_from() - 1;
        let mut dict = Dictionary::default();
        loop {
            let page = store.read_events(after, PAGE, &mut dict).await?;
            let Some(tail) = page.last() else { break };
            after = tail.id;
            self.watermark = self.watermark.max(tail.id);
            // Attribution is CPU work: keep it off the async workers that serve requests.
            self = tokio::task::spawn_blocking(move || {
                self.sessions.feed(page, &mut self.closed, &mut self.names);
                self
            })
            .await
            .map_err(task_failed)?;
            progress(after, last);
        }
        Ok(self)
    }
}

/// The counts were built with other parameters: mixing them would be wrong, so say what to do.
fn check_params(s: &LearnState, lp: &LearnParams) -> Result<(), Error> {
    if s.half_life_ms != lp.half_life_ms || s.window_ms != lp.window_ms {
        return Err(Error::invalid(format!(
            "the counts were built with a half-life of {} h and a window of {} s, not {} h and {} s: \
             run `pushwise analyze --rebuild` with the new values (or pass the old ones)",
            s.half_life_ms as f64 / 3_600_000.0,
            s.window_ms as f64 / 1000.0,
            lp.half_life_ms as f64 / 3_600_000.0,
            lp.window_ms as f64 / 1000.0
        )));
    }
    Ok(())
}

/// Selects sets from the stored counts plus the open sessions' tallies, and writes a generation.
#[allow(clippy::too_many_arguments)]
async fn select_and_write(
    store: &Store,
    open: Tally,
    counts: Counts,
    mut names: Names,
    mut report: PassReport,
    folding: impl std::future::Future<Output = Result<(), pushwise_store::Error>>,
    started: Instant,
    now_ms: i64,
) -> Result<PassReport, Error> {
    let t = Instant::now();
    let selecting = async {
        let sp = SelectParams::from_store(store).await?;
        let (events, views) = (
            report.events as i64,
            (report.views + report.views_open) as i64,
        );
        tokio::task::spawn_blocking(move || {
            // The open tally shares the stored counts' reference time: the sums are consistent.
            let mut est = open;
            est.add_stored(&counts.views, &counts.assets, &mut names);
            // Every path a response was seen for can be pinned, even one never tied to a page
            // view.
            for (path, _) in &counts.info {
                names.id(path);
            }
            let views_sel = views_for_selection(names, counts.info);
            let (stats, rows) = select(&views_sel, &est.est, &sp);
            let sums = SetSums::of(&stats, &rows);
            let g = NewGeneration {
                created_ms: now_ms,
                events,
                views,
                duration_ms: 0,
                pages: stats,
                assets: rows,
            };
            Ok::<_, Error>((sums, g.encode()?))
        })
        .await
        .map_err(task_failed)?
    };
    // Both run to the end whatever the other did: the analyzer lock is released when this
    // returns, and a fold still being written then could meet the next pass. The generation goes
    // out only once the fold is in (it never reflects counts the store does not hold).
    let (selected, folded) = tokio::join!(selecting, folding);
    let selected_and_folded_ms = t.elapsed().as_millis();
    let (sums, mut generation) = selected?;
    folded?;
    (report.pages, report.pages_with_sets, report.assets_in_sets) =
        (sums.pages, sums.pages_with_sets, sums.assets_in_sets);
    generation.duration_ms = started.elapsed().as_millis() as i64;
    (report.generation, report.generation_written) =
        store.write_generation_if_changed(&generation).await?;
    report.duration_ms = started.elapsed().as_millis() as u64;
    tracing::debug!(
        selected_and_folded_ms,
        written_ms = t.elapsed().as_millis(),
        rows = report.assets_in_sets,
        "analyzer pass: selection and generation written"
    );
    Ok(report)
}

/// What a generation holds, for the pass's report.
struct SetSums {
    /// Pages with an estimate (sections not counted).
    pages: usize,
    /// Pages where any context (or the page-wide estimate) pushes something.
    pages_with_sets: usize,
    /// Distinct (page, asset) pairs in some set of the page.
    assets_in_sets: usize,
}

impl SetSums {
    fn of(stats: &[PageStat], rows: &[SetRow]) -> SetSums {
        let in_set: BTreeSet<(&str, &str)> = rows
            .iter()
            .filter(|r| r.in_set && !is_section(&r.page))
            .map(|r| (r.page.as_str(), r.asset.as_str()))
            .collect();
        SetSums {
            pages: stats
                .iter()
                .filter(|s| s.context.is_page_wide() && !is_section(&s.page))
                .count(),
            pages_with_sets: in_set
                .iter()
                .map(|(p, _)| *p)
                .collect::<BTreeSet<_>>()
                .len(),
            assets_in_sets: in_set.len(),
        }
    }
}

/// The interned paths with what the responses said about each, as selection wants them.
pub(crate) fn views_for_selection(names: Names, info_rows: Vec<(String, AssetInfo)>) -> Views {
    let infos: HashMap<String, AssetInfo> = info_rows.into_iter().collect();
    Views {
        info: names
            .names
            .iter()
            .map(|n| infos.get(n).cloned().unwrap_or_else(AssetInfo::unseen))
            .collect(),
        paths: names.names,
        views: Vec::new(),
        unattributed: 0,
    }
}
