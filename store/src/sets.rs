//! The newest generation of push sets in memory, and the one rule that picks a request's set.
//!
//! The server keeps a [`PushSets`] (a `DashMap` swapped per page on reload) and never awaits the
//! database on the request path; `pushwise plan` builds the same structure from the store and asks
//! the same [`PushSets::decide`], and `tune` scores by building the same structure in memory and
//! asking it too, so the three cannot disagree. Nothing here computes a probability: it only
//! reads what the analyzer wrote.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use dashmap::DashMap;
use serde::Serialize;

use crate::Store;
use crate::context::{Context, UaClass, section_of};
use crate::error::Error;
use crate::event::Referer;
use crate::rows::{AsType, PageStat, SetRow};

/// One asset in a learned set, in push order.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlannedAsset {
    pub path: String,
    #[serde(rename = "as")]
    pub as_type: AsType,
    pub bytes: i64,
    pub probability: f64,
}

/// The learned sets of one page (or one section): its own estimate over every browser view when
/// the data supports one, plus the browser contexts whose data supports their own.
#[derive(Debug, Default)]
pub struct PagePlan {
    pub page_wide: Option<Arc<[PlannedAsset]>>,
    pub by_context: HashMap<Context, Arc<[PlannedAsset]>>,
}

/// Which level of the back-off decided a request's set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SetSource {
    /// The page's own set for the request's context.
    Context,
    /// The page's set over all browser views (the context has too few views for its own).
    PageWide,
    /// The section's set for the request's context (the page has too few views for its own).
    SectionContext,
    /// The section's set over all browser views.
    Section,
    /// Not a browser (crawler, monitor, feed reader, tool): nothing is pushed or hinted.
    NotBrowser,
    /// Nothing is learned for the page or its section.
    #[default]
    None,
}

impl SetSource {
    pub fn as_str(self) -> &'static str {
        match self {
            SetSource::Context => "context",
            SetSource::PageWide => "page-wide",
            SetSource::SectionContext => "section-context",
            SetSource::Section => "section",
            SetSource::NotBrowser => "not-browser",
            SetSource::None => "none",
        }
    }

    /// One line for operators: why this set.
    pub fn explain(self) -> &'static str {
        match self {
            SetSource::Context => "this context's own learned set",
            SetSource::PageWide => {
                "the page's set over all browser views (this context has too few views for its own)"
            }
            SetSource::SectionContext => {
                "the section's set for this context (the page has too few views for its own)"
            }
            SetSource::Section => {
                "the section's set over all browser views (the page has too few views for its own)"
            }
            SetSource::NotBrowser => {
                "not a browser: crawlers, monitors and tools fetch no assets, so none are pushed or hinted"
            }
            SetSource::None => "nothing learned for this page or its section",
        }
    }
}

impl Serialize for SetSource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What would be pushed for a request, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub page: String,
    pub context: Context,
    pub source: SetSource,
    pub generation: i64,
    pub assets: Arc<[PlannedAsset]>,
}

/// The request context of a request, from what the server knows at request time.
pub fn request_context(
    user_agent: Option<&str>,
    referer: Option<&str>,
    own_hosts: &[&str],
) -> Context {
    let r = Referer::reduce(referer, own_hosts, false);
    Context::of(UaClass::of(user_agent), &r)
}

/// The newest generation of push sets, in memory.
#[derive(Debug, Default)]
pub struct PushSets {
    generation: AtomicI64,
    pages: DashMap<String, Arc<PagePlan>>,
    /// The quiet-client setting in force ([`crate::quiet`]), read with each reload.
    quiet_after: std::sync::atomic::AtomicU16,
}

impl PushSets {
    pub fn new() -> Self {
        Self::default()
    }

    /// The generation loaded (0 before any).
    pub fn generation(&self) -> i64 {
        self.generation.load(Ordering::Acquire)
    }

    /// True when the loaded generation has statistics for `page` (cheap: one map lookup).
    pub fn contains(&self, page: &str) -> bool {
        self.pages.contains_key(page)
    }

    /// True when the loaded generation has a set for the section `page` belongs to.
    pub fn has_section_for(&self, page: &str) -> bool {
        self.pages.contains_key(&section_of(page))
    }

    pub fn page_count(&self) -> usize {
        self.pages.len()
    }

    /// Distinct (page, asset) pairs pushed in any context (for the metrics gauge).
    pub fn asset_count(&self) -> usize {
        self.pages
            .iter()
            .map(|p| {
                let mut assets: std::collections::HashSet<&str> = p
                    .page_wide
                    .iter()
                    .flat_map(|l| l.iter())
                    .map(|a| a.path.as_str())
                    .collect();
                for list in p.by_context.values() {
                    assets.extend(list.iter().map(|a| a.path.as_str()));
                }
                assets.len()
            })
            .sum()
    }

    /// Clients are held back after this many quiet views (0: never).
    pub fn quiet_after(&self) -> crate::quiet::QuietAfter {
        crate::quiet::QuietAfter::new(i64::from(self.quiet_after.load(Ordering::Relaxed)))
            .unwrap_or(crate::quiet::QuietAfter::OFF)
    }

    pub fn set_quiet_after(&self, q: crate::quiet::QuietAfter) {
        self.quiet_after.store(q.get(), Ordering::Relaxed);
    }

    /// Loads the newest generation if it is newer than the one in memory, and the quiet-client
    /// setting (not learned, so not in a generation: it applies from this reload). Returns
    /// whether it loaded a generation.
    pub async fn reload_if_newer(&self, store: &Store) -> Result<bool, Error> {
        self.set_quiet_after(store.quiet_after().await?);
        let Some(newest) = store.latest_generation().await? else {
            return Ok(false);
        };
        if newest <= self.generation() {
            return Ok(false);
        }
        let plans = PushSets::load_plans(store, newest).await?;
        self.replace(newest, plans);
        Ok(true)
    }

    /// Swaps in a new generation: each page's set is replaced atomically; pages gone are removed.
    pub fn replace(&self, generation: i64, plans: HashMap<String, PagePlan>) {
        let keep: std::collections::HashSet<String> = plans.keys().cloned().collect();
        for (page, plan) in plans {
            self.pages.insert(page, Arc::new(plan));
        }
        self.pages.retain(|k, _| keep.contains(k));
        self.generation.store(generation, Ordering::Release);
    }

    /// The set to push for a view of `page` in `context`. The back-off, the one place it is
    /// written: nothing for clients that are not browsers; else the page's own set for the
    /// context, else the page's set over all browser views, else the same two for the page's
    /// section, else nothing. A level exists only where the analyzer found enough views for it.
    pub fn decide(&self, page: &str, context: Context) -> Decision {
        let generation = self.generation();
        let (source, assets) = if context.is_browser() {
            self.back_off(page, context)
        } else {
            (SetSource::NotBrowser, None)
        };
        Decision {
            page: page.to_string(),
            context,
            source,
            generation,
            assets: assets.unwrap_or_else(|| Arc::from(Vec::new())),
        }
    }

    fn back_off(&self, page: &str, context: Context) -> (SetSource, Option<Arc<[PlannedAsset]>>) {
        let levels = [
            (page.to_string(), SetSource::Context, SetSource::PageWide),
            (
                section_of(page),
                SetSource::SectionContext,
                SetSource::Section,
            ),
        ];
        for (key, own, wide) in levels {
            let Some(plan) = self.pages.get(&key) else {
                continue;
            };
            if let Some(a) = plan.by_context.get(&context) {
                return (own, Some(Arc::clone(a)));
            }
            if let Some(a) = &plan.page_wide {
                return (wide, Some(Arc::clone(a)));
            }
        }
        (SetSource::None, None)
    }

    /// Builds the in-memory plans of one generation from the store.
    pub async fn load_plans(
        store: &Store,
        generation: i64,
    ) -> Result<HashMap<String, PagePlan>, Error> {
        let rows = store.set_rows(generation, true, None).await?;
        let stats = store.page_stats(generation, None).await?;
        Ok(PushSets::plans_from_rows(rows, stats))
    }

    /// Builds plans from set rows (only those in a set are used) and page statistics: what
    /// [`PushSets::load_plans`] reads, and what `tune` scores without writing a generation.
    pub fn plans_from_rows(rows: Vec<SetRow>, stats: Vec<PageStat>) -> HashMap<String, PagePlan> {
        let mut lists: HashMap<(String, Context), Vec<PlannedAsset>> = HashMap::new();
        for r in rows.into_iter().filter(|r| r.in_set) {
            lists
                .entry((r.page, r.context))
                .or_default()
                .push(PlannedAsset {
                    path: r.asset,
                    as_type: r.as_type,
                    bytes: r.bytes,
                    probability: r.probability,
                });
        }
        let mut plans: HashMap<String, PagePlan> = HashMap::new();
        for s in stats {
            let assets: Arc<[PlannedAsset]> = lists
                .remove(&(s.page.clone(), s.context))
                .unwrap_or_default()
                .into();
            let plan = plans.entry(s.page).or_default();
            if !s.uses_own {
                continue;
            }
            if s.context.is_page_wide() {
                plan.page_wide = Some(assets);
            } else if s.context.is_browser() {
                plan.by_context.insert(s.context, assets);
            }
        }
        plans
    }
}
