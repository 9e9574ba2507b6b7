//! The newest generation of push sets in memory, and the one rule that picks a request's set.
//!
//! The server keeps a [`PushSets`] (a `DashMap` swapped per page on reload) and never awaits the
//! database on the request path; `pushwise plan` builds the same structure from the store and asks
//! the same [`PushSets::decide`], and `tune` scores with the same [`pick`] rule, so the three
//! cannot disagree. Nothing here computes a probability: it only reads what the analyzer wrote.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use dashmap::DashMap;
use serde::Serialize;

use crate::Store;
use crate::context::{Context, UaClass};
use crate::error::Error;
use crate::event::Referer;
use crate::rows::AsType;

/// One asset in a learned set, in push order.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlannedAsset {
    pub path: String,
    #[serde(rename = "as")]
    pub as_type: AsType,
    pub bytes: i64,
    pub probability: f64,
}

/// The learned sets of one page: page-wide, plus the contexts whose data supports their own.
#[derive(Debug, Default)]
pub struct PagePlan {
    pub page_wide: Arc<[PlannedAsset]>,
    pub by_context: HashMap<Context, Arc<[PlannedAsset]>>,
}

/// Which set a decision used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SetSource {
    /// The request context's own set.
    Context,
    /// The page-wide set (the context has too few views for its own).
    PageWide,
    /// No set is learned for the page.
    #[default]
    None,
}

impl SetSource {
    pub fn as_str(self) -> &'static str {
        match self {
            SetSource::Context => "context",
            SetSource::PageWide => "page-wide",
            SetSource::None => "none",
        }
    }
}

impl Serialize for SetSource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The fallback rule, the one place it is written: a context's own set where the data supported
/// one, else the page-wide set, else nothing.
pub fn pick<T>(own: Option<T>, page_wide: Option<T>) -> (SetSource, Option<T>) {
    match (own, page_wide) {
        (Some(o), _) => (SetSource::Context, Some(o)),
        (None, Some(p)) => (SetSource::PageWide, Some(p)),
        (None, None) => (SetSource::None, None),
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

    pub fn page_count(&self) -> usize {
        self.pages.len()
    }

    /// Distinct (page, asset) pairs pushed in any context (for the metrics gauge).
    pub fn asset_count(&self) -> usize {
        self.pages
            .iter()
            .map(|p| {
                let mut assets: std::collections::HashSet<&str> =
                    p.page_wide.iter().map(|a| a.path.as_str()).collect();
                for list in p.by_context.values() {
                    assets.extend(list.iter().map(|a| a.path.as_str()));
                }
                assets.len()
            })
            .sum()
    }

    /// Loads the newest generation if it is newer than the one in memory. Returns whether it did.
    pub async fn reload_if_newer(&self, store: &Store) -> Result<bool, Error> {
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

    /// The set to push for a view of `page` in `context`, by [`pick`].
    pub fn decide(&self, page: &str, context: Context) -> Decision {
        let generation = self.generation();
        let plan = self.pages.get(page).map(|p| Arc::clone(p.value()));
        let (source, assets) = match &plan {
            None => (SetSource::None, None),
            Some(plan) => pick(plan.by_context.get(&context), Some(&plan.page_wide)),
        };
        Decision {
            page: page.to_string(),
            context,
            source,
            generation,
            assets: assets.map_or_else(|| Arc::from(Vec::new()), Arc::clone),
        }
    }

    /// Builds the in-memory plans of one generation from the store.
    pub async fn load_plans(
        store: &Store,
        generation: i64,
    ) -> Result<HashMap<String, PagePlan>, Error> {
        let rows = store.set_rows(generation, true, None).await?;
        let stats = store.page_stats(generation, None).await?;
        let mut lists: HashMap<(String, Context), Vec<PlannedAsset>> = HashMap::new();
        for r in rows {
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
            if s.context.is_page_wide() {
                plan.page_wide = assets;
            } else if s.uses_own {
                plan.by_context.insert(s.context, assets);
            }
        }
        Ok(plans)
    }
}
