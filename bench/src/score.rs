//! Scoring push sets against what page views really fetched, digest-aware, and the two reference
//! learners pushwise is measured against (plain per-page co-occurrence, and the per-page oracle).
//!
//! The protocol (the learning issue's): learn on the older part of a log, then for every page
//! view of the newer part compare what would be pushed with what the view fetched. An asset the
//! same client fetched in an earlier view is in its cache digest, so it is neither pushed nor
//! needed. Precision = pushed and fetched / pushed; recall = pushed and fetched / fetched.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::shaped::ViewTruth;

/// Precision, recall and F1 of one learner on the newer views.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Score {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub pushed_per_view: f64,
    /// The threshold chosen, for the reference learners (with hindsight).
    pub threshold: Option<f64>,
}

impl Score {
    /// Precision, recall and F1 from counts: `tp` pushed and needed, `pushed`, `needed`, over
    /// `views` views.
    fn from_counts(tp: u64, pushed: u64, needed: u64, views: usize) -> Score {
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let (precision, recall) = (ratio(tp, pushed), ratio(tp, needed));
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        Score {
            precision,
            recall,
            f1,
            pushed_per_view: pushed as f64 / views.max(1) as f64,
            threshold: None,
        }
    }
}

/// The time at which the oldest `share` of the page views end: views at or after it are "newer".
pub fn split_ms(truth: &[ViewTruth], share: f64) -> i64 {
    let mut t: Vec<i64> = truth.iter().map(|v| v.ts_ms).collect();
    t.sort_unstable();
    t.get(((t.len() as f64) * share) as usize)
        .copied()
        .unwrap_or(i64::MAX)
}

/// The newer views, each with what its client already had (fetched in earlier views).
pub struct Newer<'a> {
    pub views: Vec<&'a ViewTruth>,
    have: Vec<HashSet<&'a str>>,
}

impl<'a> Newer<'a> {
    pub fn new(truth: &'a [ViewTruth], split_ms: i64) -> Newer<'a> {
        let mut order: Vec<&ViewTruth> = truth.iter().collect();
        order.sort_by_key(|v| v.ts_ms);
        let mut cache: HashMap<(&str, &str), HashSet<&str>> = HashMap::new();
        let (mut views, mut have) = (Vec::new(), Vec::new());
        for v in order {
            let c = cache.entry((&v.ip, v.user_agent)).or_default();
            if v.ts_ms >= split_ms {
                views.push(v);
                have.push(c.clone());
            }
            c.extend(v.fetched.iter().map(String::as_str));
        }
        Newer { views, have }
    }

    /// Scores `sets[i]`, the set for `self.views[i]`.
    pub fn score<S: AsRef<str>>(&self, sets: &[Vec<S>]) -> Score {
        self.score_where(sets, |_| true)
    }

    /// Scores the views `only` keeps (e.g. one section's).
    pub fn score_where<S: AsRef<str>>(
        &self,
        sets: &[Vec<S>],
        only: impl Fn(&ViewTruth) -> bool,
    ) -> Score {
        let (mut tp, mut pushed, mut needed) = (0u64, 0u64, 0u64);
        for ((v, have), set) in self.views.iter().zip(&self.have).zip(sets) {
            if !only(v) {
                continue;
            }
            let need: HashSet<&str> = v
                .fetched
                .iter()
                .map(String::as_str)
                .filter(|a| !have.contains(a))
                .collect();
            needed += need.len() as u64;
            for a in set.iter().map(AsRef::as_ref) {
                if have.contains(a) {
                    continue; // in the client's digest: not pushed
                }
                pushed += 1;
                if need.contains(a) {
                    tp += 1;
                }
            }
        }
        Score::from_counts(tp, pushed, needed, self.views.len())
    }
}

/// Plain per-page co-occurrence: P(asset | page) = views of the page that fetched the asset /
/// views of the page, over every view (crawlers too), no context, no decay, no caps.
pub fn cooccurrence<'a>(
    views: impl IntoIterator<Item = &'a ViewTruth>,
) -> HashMap<String, Vec<(String, f64)>> {
    let mut n: HashMap<&str, (u64, HashMap<&str, u64>)> = HashMap::new();
    for v in views {
        let e = n.entry(&v.page).or_default();
        e.0 += 1;
        for a in &v.fetched {
            *e.1.entry(a).or_default() += 1;
        }
    }
    n.into_iter()
        .map(|(p, (views, assets))| {
            let mut list: Vec<(String, f64)> = assets
                .into_iter()
                .map(|(a, k)| (a.to_string(), k as f64 / views as f64))
                .collect();
            list.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            (p.to_string(), list)
        })
        .collect()
}

/// The thresholds the reference learners are tried at.
pub const THRESHOLDS: [f64; 19] = [
    0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80,
    0.85, 0.90, 0.95,
];

/// The assets of `page` in a co-occurrence table at threshold `t` (none for a page not in it).
fn set_at<'t>(table: &'t HashMap<String, Vec<(String, f64)>>, page: &str, t: f64) -> Vec<&'t str> {
    table.get(page).map_or_else(Vec::new, |l| {
        l.iter()
            .filter(|(_, p)| *p >= t)
            .map(|(a, _)| a.as_str())
            .collect()
    })
}

/// A co-occurrence table scored on the newer views at its best threshold (chosen on those same
/// views: hindsight, so the reference is as strong as it can be), with the set it gives each
/// newer view.
pub fn best_threshold_sets<'t>(
    table: &'t HashMap<String, Vec<(String, f64)>>,
    newer: &Newer,
) -> (Score, Vec<Vec<&'t str>>) {
    let mut best = (Score::default(), Vec::new());
    for t in THRESHOLDS {
        let sets: Vec<Vec<&str>> = newer
            .views
            .iter()
            .map(|v| set_at(table, &v.page, t))
            .collect();
        let s = newer.score(&sets);
        if s.f1 > best.0.f1 {
            best = (
                Score {
                    threshold: Some(t),
                    ..s
                },
                sets,
            );
        }
    }
    best
}

/// Plain co-occurrence with the quiet-client rule (a client offered a set once that took none of
/// it gets nothing after), at its best threshold in hindsight: how much of pushwise's lead the
/// rule alone gives a plain learner. `all` is every view in time order (the rule replays each
/// client's history, older views too); the newer ones among them are `newer.views`, in order.
pub fn best_threshold_quiet(
    table: &HashMap<String, Vec<(String, f64)>>,
    all: &[&ViewTruth],
    newer: &Newer,
    split_ms: i64,
) -> Score {
    use pushwise_store::quiet::{Activity, QuietAfter};
    let one = QuietAfter::new(1).expect("1 is a valid setting");
    let mut best = Score::default();
    for t in THRESHOLDS {
        let mut clients: HashMap<(&str, &str), Activity> = HashMap::new();
        let mut sets: Vec<Vec<&str>> = Vec::with_capacity(newer.views.len());
        for v in all {
            let set = set_at(table, &v.page, t);
            let quiet = !set.is_empty() && {
                let took = set.iter().any(|x| v.fetched.iter().any(|f| f == x));
                let a = clients.entry((&v.ip, v.user_agent)).or_default();
                a.replay_view(Some(v.ts_ms), one, Some(took))
            };
            if v.ts_ms >= split_ms {
                sets.push(if quiet { Vec::new() } else { set });
            }
        }
        let s = newer.score(&sets);
        if s.f1 > best.f1 {
            best = Score {
                threshold: Some(t),
                ..s
            };
        }
    }
    best
}

/// The per-page oracle: plain co-occurrence learned on the older part, with each page's threshold
/// chosen on the newer part itself (hindsight per page). Chosen by coordinate ascent on the total
/// F1 = 2·TP / (pushed + needed), which is exact per page because TP and pushed add up over pages
/// and needed does not depend on the sets. Returns its score and the set it gives each newer view.
pub fn per_page_oracle(
    table: &HashMap<String, Vec<(String, f64)>>,
    newer: &Newer,
) -> (Score, Vec<Vec<String>>) {
    // Per page and threshold: (true positives, pushed) over the newer views of that page.
    let mut by_page: HashMap<&str, Vec<(u64, u64)>> = HashMap::new();
    let mut needed = 0u64;
    for (v, have) in newer.views.iter().zip(&newer.have) {
        let need: HashSet<&str> = v
            .fetched
            .iter()
            .map(String::as_str)
            .filter(|a| !have.contains(a))
            .collect();
        needed += need.len() as u64;
        let Some(list) = table.get(&v.page) else {
            continue;
        };
        let e = by_page
            .entry(v.page.as_str())
            .or_insert_with(|| vec![(0, 0); THRESHOLDS.len() + 1]);
        for (i, t) in THRESHOLDS.iter().enumerate() {
            for (a, _) in list.iter().filter(|(_, p)| p >= t) {
                if have.contains(a.as_str()) {
                    continue;
                }
                e[i].1 += 1;
                if need.contains(a.as_str()) {
                    e[i].0 += 1;
                }
            }
        }
        // The last "threshold" pushes nothing at all.
    }
    let mut pick: HashMap<&str, usize> = by_page.keys().map(|&p| (p, THRESHOLDS.len())).collect();
    let (mut tp, mut pushed) = (0u64, 0u64);
    for _ in 0..3 {
        for (&page, options) in &by_page {
            let cur = options[pick[page]];
            let (base_tp, base_pushed) = (tp - cur.0, pushed - cur.1);
            let best = (0..options.len())
                .max_by(|&a, &b| {
                    let f = |i: usize| {
                        2.0 * (base_tp + options[i].0) as f64
                            / (base_pushed + options[i].1 + needed).max(1) as f64
                    };
                    f(a).total_cmp(&f(b))
                })
                .unwrap_or(THRESHOLDS.len());
            pick.insert(page, best);
            tp = base_tp + options[best].0;
            pushed = base_pushed + options[best].1;
        }
    }
    let sets = newer
        .views
        .iter()
        .map(|v| {
            let i = pick
                .get(v.page.as_str())
                .copied()
                .unwrap_or(THRESHOLDS.len());
            THRESHOLDS.get(i).map_or_else(Vec::new, |&t| {
                set_at(table, &v.page, t)
                    .into_iter()
                    .map(String::from)
                    .collect()
            })
        })
        .collect();
    (
        Score::from_counts(tp, pushed, needed, newer.views.len()),
        sets,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(ts: i64, ip: &str, page: &str, fetched: &[&str]) -> ViewTruth {
        ViewTruth {
            ts_ms: ts,
            ip: ip.into(),
            user_agent: "ua",
            page: page.into(),
            referer: None,
            browser: true,
            fetched: fetched.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn what_the_client_fetched_before_is_neither_pushed_nor_needed() {
        let truth = vec![
            view(0, "a", "/p", &["/x.css"]),
            view(10, "a", "/q", &["/y.png"]),
            view(10, "b", "/q", &["/x.css", "/y.png"]),
        ];
        let newer = Newer::new(&truth, 5);
        // Client a has /x.css: pushing it to a is not counted; b needed and got both.
        let s = newer.score(&[vec!["/x.css", "/y.png"], vec!["/x.css", "/y.png"]]);
        assert_eq!((s.precision, s.recall), (1.0, 1.0));
        // Pushing nothing: recall 0 over 3 needed.
        let s = newer.score(&[Vec::<&str>::new(), vec![]]);
        assert_eq!((s.precision, s.recall, s.f1), (0.0, 0.0, 0.0));
        // A wasted push halves precision.
        let s = newer.score(&[vec!["/y.png", "/z.js"], vec!["/x.css", "/y.png"]]);
        assert_eq!(s.precision, 0.75);
    }

    #[test]
    fn the_oracles_sets_score_what_the_oracle_reports() {
        let truth = vec![
            view(0, "a", "/p", &["/x.css", "/p.png"]),
            view(1, "b", "/p", &[]),
            view(2, "c", "/q", &["/x.css"]),
            view(10, "d", "/p", &["/x.css", "/p.png"]),
            view(11, "e", "/p", &[]),
            view(12, "f", "/q", &[]),
            view(13, "g", "/q", &[]),
            view(14, "h", "/q", &[]),
        ];
        let older: Vec<&ViewTruth> = truth.iter().filter(|v| v.ts_ms < 5).collect();
        let newer = Newer::new(&truth, 5);
        let (score, sets) = per_page_oracle(&cooccurrence(older), &newer);
        let again = newer.score(&sets);
        assert_eq!(
            (score.precision, score.recall),
            (again.precision, again.recall)
        );
        // /q's newer views fetched nothing: the oracle pushes nothing there; /p's get both assets.
        assert!(sets[2..].iter().all(Vec::is_empty), "{sets:?}");
        assert_eq!(score.recall, 1.0);
    }
}
