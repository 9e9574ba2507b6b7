//! Selection: turn estimates into push sets under thresholds, caps, pins and bans, keeping every
//! candidate with the reason it is in or out.

use std::collections::HashMap;

use pushwise_store::Context;
use pushwise_store::context::{is_section, section_of};
use pushwise_store::rows::{AsType, PageStat, PinAction, Reason, SetRow};

use crate::attribute::{AssetInfo, Views};
use crate::estimate::{Estimates, PageEstimate, probability};
use crate::params::{Limits, SelectParams};

/// One candidate asset of a page in a context.
struct Candidate {
    asset: u32,
    probability: f64,
    support: i64,
    delay_ms: i64,
    /// Never seen with this page (or context): only the level above says it is likely.
    borrowed: bool,
}

/// Turns estimates into set rows (every candidate, in or out, with the reason) and page stats, for
/// every page and every section (the pages under one first path segment, summed: what a rarely
/// seen page backs off to). A page, section or context "uses its own" set only with at least
/// `min_support` views; crawlers' contexts never do (they are kept for the statistics).
///
/// Each estimate also borrows from the level above it, worth `prior_views` average views of its
/// own: a context from its page, a page from its section, a section's context from the section.
/// A page seen 3 times whose views never fetched the section's stylesheet (warm caches) still
/// gets it at a probability that reflects both; a page seen 300 times is hardly moved.
pub fn select(views: &Views, est: &Estimates, sp: &SelectParams) -> (Vec<PageStat>, Vec<SetRow>) {
    let mut stats = Vec::new();
    let mut rows = Vec::new();
    let sections = section_estimates(views, est);
    let mut keys: Vec<(&str, Context, &PageEstimate)> = est
        .iter()
        .map(|(&(p, c), pe)| (views.paths[p as usize].as_str(), c, pe))
        .chain(sections.iter().map(|((n, c), pe)| (n.as_str(), *c, pe)))
        .collect();
    keys.sort_unstable_by(|a, b| a.0.cmp(b.0).then(a.1.cmp(&b.1)));
    // Priors in dependency order: sections over all views, then pages over all views.
    let floor = sp.lowest_threshold();
    let mut priors: HashMap<&str, Prior> = HashMap::new();
    for &(name, context, pe) in &keys {
        if context.is_page_wide() && is_section(name) {
            let c = candidates(views, pe, None, sp.prior_views, &[]);
            priors.insert(name, prior_of(&c, floor));
        }
    }
    let section_names: HashMap<&str, String> = keys
        .iter()
        .filter(|k| !is_section(k.0))
        .map(|k| (k.0, section_of(k.0)))
        .collect();
    let mut page_priors: HashMap<&str, Prior> = HashMap::new();
    for &(name, context, pe) in &keys {
        if context.is_page_wide() && !is_section(name) {
            let parent = priors.get(section_names[name].as_str());
            let c = candidates(views, pe, parent, sp.prior_views, &[]);
            page_priors.insert(name, prior_of(&c, floor));
        }
    }
    for (page, context, pe) in keys {
        let limits = sp.for_page(page);
        let min_support = limits.min_support;
        let pushable = context.is_page_wide() || context.is_browser();
        let uses_own = pushable && pe.views >= min_support;
        stats.push(PageStat {
            page: page.to_string(),
            context,
            views: pe.views,
            weighted: pe.weighted,
            uses_own,
        });
        if !uses_own {
            continue;
        }
        let parent = match (is_section(page), context.is_page_wide()) {
            (true, true) => None,
            (true, false) => priors.get(page),
            (false, true) => priors.get(section_names[page].as_str()),
            (false, false) => page_priors.get(page),
        };
        let pins = sp.pins.get(page).map_or(&[][..], Vec::as_slice);
        let mut budget = Budget {
            count: 0,
            bytes: 0,
            limits,
        };
        let cands = candidates(views, pe, parent, sp.prior_views, pins);
        // Borrowed assets below the threshold are not worth a row each (a section's long tail
        // would be repeated under every page of it); observed ones are kept with their reasons
        // down to a tenth of the threshold. Below that lies the noise of a large site (an image
        // fetched once in a thousand views): on a generated 3,000-page site it was a quarter of
        // every generation's rows, rewritten by every pass, and no answer to "why is this not
        // pushed?" that `sets show` could not give by its absence (see its help).
        let listed = limits.threshold * LISTED_FRACTION;
        let cands = cands.into_iter().filter(|c| {
            let floor = if c.borrowed { limits.threshold } else { listed };
            c.probability >= floor
                || pins
                    .iter()
                    .any(|(p, _)| *p == views.paths[c.asset as usize])
        });
        for (pos, c) in cands.enumerate() {
            let path = &views.paths[c.asset as usize];
            let info = &views.info[c.asset as usize];
            let pin = pins.iter().find(|(x, _)| x == path).map(|(_, a)| *a);
            let reason = budget.admit(reason_before_caps(info, pin, &c, &limits), info);
            rows.push(SetRow {
                page: page.to_string(),
                context,
                asset: path.clone(),
                probability: c.probability,
                support: c.support,
                delay_ms: c.delay_ms.min(i64::MAX / 4),
                bytes: info.typical_bytes(),
                as_type: AsType::of(path),
                in_set: reason.in_set(),
                position: pos as i64,
                reason,
            });
        }
    }
    (stats, rows)
}

/// Observed candidates less likely than this fraction of the threshold get no row.
pub const LISTED_FRACTION: f64 = 0.1;

/// What a child estimate borrows: each asset's (smoothed) probability and typical delay, for the
/// assets likely enough that borrowing them could ever put them in a set.
type Prior = HashMap<u32, (f64, i64)>;

fn prior_of(c: &[Candidate], floor: f64) -> Prior {
    c.iter()
        .filter(|c| c.probability >= floor)
        .map(|c| (c.asset, (c.probability, c.delay_ms)))
        .collect()
}

/// The estimates of every section, per browser context and over all browser views: the sums of
/// its pages' estimates.
fn section_estimates(views: &Views, est: &Estimates) -> HashMap<(String, Context), PageEstimate> {
    let mut out: HashMap<(String, Context), PageEstimate> = HashMap::new();
    // In page order, not the map's (random) order: floating-point sums depend on their order,
    // and the same counts must give the same generation, bit for bit (a pass whose sets equal the
    // newest generation's writes none).
    let mut pages: Vec<(&str, Context, &PageEstimate)> = est
        .iter()
        .map(|(&(page, context), pe)| (views.paths[page as usize].as_str(), context, pe))
        .collect();
    pages.sort_unstable_by(|a, b| a.0.cmp(b.0).then(a.1.cmp(&b.1)));
    for (path, context, pe) in pages {
        if !(context.is_page_wide() || context.is_browser()) || !path.starts_with('/') {
            continue;
        }
        let s = out.entry((section_of(path), context)).or_default();
        s.views += pe.views;
        s.weighted += pe.weighted;
        for (&a, ae) in &pe.assets {
            let sa = s.assets.entry(a).or_default();
            sa.hit_w += ae.hit_w;
            sa.hit_n += ae.hit_n;
            sa.unknown_w += ae.unknown_w;
            sa.unknown_n += ae.unknown_n;
            sa.delay_ln_sum += ae.delay_ln_sum;
        }
    }
    out
}

/// A page's candidates in push order: what the browser asks for first is pushed first; ties:
/// likelier first, then by name. Pinned assets that were never observed join too. With a
/// `parent`, every probability is smoothed toward the parent's, which is worth `prior_views`
/// average views of this estimate, and the parent's likely assets join as borrowed candidates.
fn candidates(
    views: &Views,
    pe: &PageEstimate,
    parent: Option<&Prior>,
    prior_views: f64,
    pins: &[(String, PinAction)],
) -> Vec<Candidate> {
    let (weighted, views_n) = (pe.weighted, pe.views);
    // The prior's weight in this estimate's units (weights are relative to a reference time).
    let m = match parent {
        Some(_) if views_n > 0 => prior_views * weighted / views_n as f64,
        _ => 0.0,
    };
    let mut cands: Vec<Candidate> = Vec::new();
    for (&a, ae) in &pe.assets {
        let prior = parent.and_then(|p| p.get(&a)).copied();
        if ae.hit_n == 0 && prior.is_none() {
            // Never needed when observable: not a candidate (unless pinned, below).
            continue;
        }
        let (raw, support) = probability(weighted, views_n, ae);
        let (p, delay_ms) = match prior {
            Some((pp, d)) if m > 0.0 => {
                let denom = (weighted - ae.unknown_w).max(0.0);
                let delay = if ae.hit_n > 0 {
                    ae.typical_delay_ms()
                } else {
                    d
                };
                (((ae.hit_w + m * pp) / (denom + m)).clamp(0.0, 1.0), delay)
            }
            _ => (raw, ae.typical_delay_ms()),
        };
        cands.push(Candidate {
            asset: a,
            probability: p,
            support,
            delay_ms,
            borrowed: ae.hit_n == 0,
        });
    }
    if let Some(parent) = parent.filter(|_| m > 0.0) {
        for (&a, &(pp, d)) in parent {
            if pe.assets.contains_key(&a) {
                continue;
            }
            cands.push(Candidate {
                asset: a,
                probability: (m * pp / (weighted + m)).clamp(0.0, 1.0),
                support: views_n,
                delay_ms: d,
                borrowed: true,
            });
        }
    }
    for (asset, action) in pins {
        if *action == PinAction::Pin
            && !cands
                .iter()
                .any(|c| views.paths[c.asset as usize] == *asset)
            && let Some(id) = views.paths.iter().position(|p| p == asset)
        {
            cands.push(Candidate {
                asset: id as u32,
                probability: 0.0,
                support: 0,
                delay_ms: i64::MAX / 4,
                borrowed: false,
            });
        }
    }
    cands.sort_by(|a, b| {
        a.delay_ms
            .cmp(&b.delay_ms)
            .then(b.probability.total_cmp(&a.probability))
            .then(views.paths[a.asset as usize].cmp(&views.paths[b.asset as usize]))
    });
    cands
}

/// Why a candidate is out before the caps are counted, or `Ok`/`Pinned` if it may go in.
fn reason_before_caps(
    info: &AssetInfo,
    pin: Option<PinAction>,
    c: &Candidate,
    limits: &Limits,
) -> Reason {
    let (threshold, min_support) = (limits.threshold, limits.min_support);
    let pinned = pin == Some(PinAction::Pin);
    if pin == Some(PinAction::Ban) {
        Reason::Banned
    } else if !info.cacheable {
        Reason::NotCacheable
    } else if !info.saw_ok || info.last_status != 200 && info.last_status != 304 {
        Reason::Not200
    } else if !pinned && c.support < min_support {
        Reason::LowSupport
    } else if !pinned && c.probability < threshold {
        Reason::BelowThreshold
    } else if pinned {
        Reason::Pinned
    } else {
        Reason::Ok
    }
}

/// The count and byte caps of one set, filled in push order.
struct Budget {
    count: usize,
    bytes: i64,
    limits: Limits,
}

impl Budget {
    /// The final reason of a candidate: over a cap if it would exceed one, else as it was; what
    /// goes in is counted.
    fn admit(&mut self, reason: Reason, info: &AssetInfo) -> Reason {
        if !reason.in_set() {
            return reason;
        }
        let b = info.typical_bytes();
        if self.count >= self.limits.max_count {
            return Reason::OverCount;
        }
        if self.bytes + b > self.limits.max_bytes {
            return Reason::OverBytes;
        }
        self.count += 1;
        self.bytes += b;
        reason
    }
}
