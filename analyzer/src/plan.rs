//! The push decision shared by the server and `pushwise plan`: which learned set applies to a request.
//!
//! The server keeps a [`PushSets`] in memory (a `DashMap` swapped per page on reload) and never
//! awaits SQLite on the request path; `plan` builds the same structure from the store and asks the
//! same [`PushSets::decide`], so the two cannot disagree.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use dashmap::DashMap;
use serde::Serialize;

use crate::error::Error;
use crate::event::{Context, Referer, is_browser};
use crate::learn::PAGE_WIDE;
use crate::store::Store;

/// One asset in a learned set, in push order.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlannedAsset {
    pub path: String,
    #[serde(rename = "as")]
    pub as_type: String,
    pub bytes: i64,
    pub probability: f64,
}

/// The learned sets of one page: page-wide, plus the contexts whose data supports their own.
#[derive(Debug, Default)]
pub struct PagePlan {
    pub page_wide: Arc<[PlannedAsset]>,
    pub by_context: HashMap<Context, Arc<[PlannedAsset]>>,
}

/// What would be pushed for a request, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub page: String,
    pub context: &'static str,
    /// `"context"` (own set), `"page-wide"` (fallback), or `"none"` (no set learned for the page).
    pub source: &'static str,
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
    Context::of(is_browser(user_agent), &r)
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
        let plans = load_plans(store, newest).await?;
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

    /// The set to push for a view of `page` in `context`: the context's own set where the data
    /// supported one, else the page-wide set.
    pub fn decide(&self, page: &str, context: Context) -> Decision {
        let generation = self.generation();
        let Some(plan) = self.pages.get(page).map(|p| Arc::clone(p.value())) else {
            return Decision {
                page: page.to_string(),
                context: context.name(),
                source: "none",
                generation,
                assets: Arc::from(Vec::new()),
            };
        };
        let (source, assets) = match plan.by_context.get(&context) {
            Some(a) => ("context", Arc::clone(a)),
            None => ("page-wide", Arc::clone(&plan.page_wide)),
        };
        Decision {
            page: page.to_string(),
            context: context.name(),
            source,
            generation,
            assets,
        }
    }
}

/// Builds the in-memory plans of one generation from the store.
pub async fn load_plans(
    store: &Store,
    generation: i64,
) -> Result<HashMap<String, PagePlan>, Error> {
    let rows = store.set_rows(generation, true, None).await?;
    let stats = store.page_stats(generation, None).await?;
    let mut lists: HashMap<(String, String), Vec<PlannedAsset>> = HashMap::new();
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
            .remove(&(s.page.clone(), s.context.clone()))
            .unwrap_or_default()
            .into();
        let plan = plans.entry(s.page).or_default();
        if s.context == PAGE_WIDE {
            plan.page_wide = assets;
        } else if s.uses_own
            && let Some(ctx) = Context::parse(&s.context)
        {
            plan.by_context.insert(ctx, assets);
        }
    }
    Ok(plans)
}
