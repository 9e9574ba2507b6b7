//! Selection: turn estimates into push sets under thresholds, caps, pins and bans, keeping every
//! candidate with the reason it is in or out.

use pushwise_store::Context;
use pushwise_store::rows::{AsType, PageStat, PinAction, Reason, SetRow};

use crate::attribute::{AssetInfo, Views};
use crate::estimate::{Estimates, PageEstimate, probability};
use crate::params::SelectParams;

/// One candidate asset of a page in a context.
struct Candidate {
    asset: u32,
    probability: f64,
    support: i64,
    delay_ms: i64,
}

/// Turns estimates into set rows (every candidate, in or out, with the reason) and page stats.
pub fn select(views: &Views, est: &Estimates, sp: &SelectParams) -> (Vec<PageStat>, Vec<SetRow>) {
    let mut stats = Vec::new();
    let mut rows = Vec::new();
    let mut keys: Vec<(u32, Context)> = est.keys().copied().collect();
    keys.sort_unstable_by(|a, b| {
        views.paths[a.0 as usize]
            .cmp(&views.paths[b.0 as usize])
            .then(a.1.cmp(&b.1))
    });
    for key in keys {
        let (page_id, context) = key;
        let page = &views.paths[page_id as usize];
        let (threshold, min_support) = sp.for_page(page);
        let pe = &est[&key];
        let uses_own = context.is_page_wide() || pe.views >= min_support;
        stats.push(PageStat {
            page: page.clone(),
            context,
            views: pe.views,
            weighted: pe.weighted,
            uses_own,
        });
        if !uses_own {
            continue;
        }
        let pins = sp.pins.get(page.as_str()).map_or(&[][..], Vec::as_slice);
        let mut budget = Budget {
            count: 0,
            bytes: 0,
            sp,
        };
        for (pos, c) in candidates(views, pe, pins).into_iter().enumerate() {
            let path = &views.paths[c.asset as usize];
            let info = &views.info[c.asset as usize];
            let pin = pins.iter().find(|(x, _)| x == path).map(|(_, a)| *a);
            let limits = (threshold, min_support);
            let reason = budget.admit(reason_before_caps(info, pin, &c, limits), info);
            rows.push(SetRow {
                page: page.clone(),
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

/// A page's candidates in push order: what the browser asks for first is pushed first; ties:
/// likelier first, then by name. Pinned assets that were never observed join too.
fn candidates(views: &Views, pe: &PageEstimate, pins: &[(String, PinAction)]) -> Vec<Candidate> {
    let (weighted, views_n) = (pe.weighted, pe.views);
    let mut cands: Vec<Candidate> = Vec::new();
    for (&a, ae) in &pe.assets {
        if ae.hit_n == 0 {
            // Never needed when observable: not a candidate (unless pinned, below).
            continue;
        }
        let (p, support) = probability(weighted, views_n, ae);
        cands.push(Candidate {
            asset: a,
            probability: p,
            support,
            delay_ms: ae.typical_delay_ms(),
        });
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
    (threshold, min_support): (f64, i64),
) -> Reason {
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
struct Budget<'a> {
    count: usize,
    bytes: i64,
    sp: &'a SelectParams,
}

impl Budget<'_> {
    /// The final reason of a candidate: over a cap if it would exceed one, else as it was; what
    /// goes in is counted.
    fn admit(&mut self, reason: Reason, info: &AssetInfo) -> Reason {
        if !reason.in_set() {
            return reason;
        }
        let b = info.typical_bytes();
        if self.count >= self.sp.max_count {
            return Reason::OverCount;
        }
        if self.bytes + b > self.sp.max_bytes {
            return Reason::OverBytes;
        }
        self.count += 1;
        self.bytes += b;
        reason
    }
}
