//! Synthetic traffic for a scanned site, shaped like real access logs: crawlers and monitors that
//! fetch pages only, returning visitors with warm caches, lazy images, 304s and 206s, two host
//! names in absolute Referers, query strings, and lines out of order within a minute.

use std::collections::HashSet;

use crate::site::SiteMap;

/// Browser User-Agents the model draws from.
pub const BROWSER_UAS: [&str; 4] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
];
const BOT_UAS: [&str; 4] = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "UptimeRobot/2.0 (http://www.uptimerobot.com/)",
    "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 5 subscribers)",
];

/// The traffic model's knobs.
#[derive(Debug, Clone)]
pub struct SynthConfig {
    pub visits: usize,
    pub seed: u64,
    /// Unix ms of the first visit.
    pub start_ms: i64,
    /// Mean gap between visit starts, ms.
    pub visit_gap_ms: i64,
    pub hosts: Vec<String>,
    pub bot_share: f64,
    /// Share of browser visits from returning visitors (warm cache).
    pub returning_share: f64,
    /// Chance a page-specific (lazy) image is fetched on a cold view.
    pub lazy_image_fetch: f64,
    /// Reorder lines within a minute, as log aggregation does.
    pub shuffle: bool,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            visits: 1000,
            seed: 7,
            start_ms: 1_767_225_600_000, // 2026-01-01
            visit_gap_ms: 3_000,
            hosts: vec!["example.com".into(), "www.example.com".into()],
            bot_share: 0.25,
            returning_share: 0.35,
            lazy_image_fetch: 0.85,
            shuffle: true,
        }
    }
}

/// One request of the model.
#[derive(Debug, Clone)]
pub struct Hit {
    pub ts_ms: i64,
    pub ip: String,
    pub path: String,
    pub status: u16,
    pub bytes: u64,
    pub referer: Option<String>,
    pub user_agent: &'static str,
}

/// One page view of the model and the assets it really needed (the ground truth for scoring).
#[derive(Debug, Clone)]
pub struct TruthView {
    pub page: String,
    pub browser: bool,
    pub needed: Vec<String>,
}

/// Draws visits. Returns the requests (in the order a log would show them) and the truth.
pub fn generate(site: &SiteMap, cfg: &SynthConfig) -> (Vec<Hit>, Vec<TruthView>) {
    let mut rng = fastrand::Rng::with_seed(cfg.seed);
    let mut hits = Vec::new();
    let mut truth = Vec::new();
    let pages = &site.pages;
    if pages.is_empty() {
        return (hits, truth);
    }
    let shared = shared_assets(site);
    let mut t = cfg.start_ms;
    for v in 0..cfg.visits {
        t += 1 + rng.i64(0..cfg.visit_gap_ms.max(1) * 2);
        let mut g = Gen {
            rng: &mut rng,
            site,
            cfg,
            shared: &shared,
            hits: &mut hits,
            truth: &mut truth,
        };
        g.visit(v, t);
    }
    hits.sort_by_key(|h| h.ts_ms);
    if cfg.shuffle {
        shuffle_within_minutes(&mut hits, &mut rng);
    }
    (hits, truth)
}

fn page_file(path: &str) -> String {
    if path.ends_with('/') {
        format!("{path}index.html")
    } else {
        path.to_string()
    }
}

/// A combined-format line at UTC+1 (so importers must honour the zone).
pub fn combined_line(h: &Hit) -> String {
    format!(
        "{} - - [{}] \"GET {} HTTP/1.1\" {} {} \"{}\" \"{}\"",
        h.ip,
        pushwise_store::time::format_clf_date(h.ts_ms, 60),
        h.path,
        h.status,
        h.bytes,
        h.referer.as_deref().unwrap_or("-"),
        h.user_agent
    )
}

/// Assets used by more than half of the pages: "shared" (cached after the first view).
fn shared_assets(site: &SiteMap) -> HashSet<String> {
    let pages = &site.pages;
    let mut count = std::collections::HashMap::<String, usize>::new();
    for p in pages {
        for a in p.all_assets() {
            *count.entry(a).or_default() += 1;
        }
    }
    count
        .into_iter()
        .filter(|(_, n)| *n * 2 > pages.len())
        .map(|(a, _)| a)
        .collect()
}

/// Log aggregation: lines within the same minute arrive in any order.
pub(crate) fn shuffle_within_minutes(hits: &mut [Hit], rng: &mut fastrand::Rng) {
    let mut i = 0;
    while i < hits.len() {
        let minute = hits[i].ts_ms / 60_000;
        let mut j = i;
        while j < hits.len() && hits[j].ts_ms / 60_000 == minute {
            j += 1;
        }
        rng.shuffle(&mut hits[i..j]);
        i = j;
    }
}

/// A browser visitor: who it is as a log line shows it.
struct Visitor<'a> {
    ip: &'a str,
    ua: &'static str,
    returning: bool,
    host: &'a str,
}

impl Visitor<'_> {
    /// The asset requests of one page view at `now` (what is not cached yet, lazy images only
    /// sometimes, revalidations of cached ones now and then); returns the assets it needed.
    #[allow(clippy::too_many_arguments)]
    fn fetch_assets(
        &self,
        rng: &mut fastrand::Rng,
        site: &SiteMap,
        page: &crate::site::Page,
        shared: &HashSet<String>,
        (now, page_url): (i64, &str),
        cached: &mut HashSet<String>,
        hits: &mut Vec<Hit>,
        cfg: &SynthConfig,
    ) -> Vec<String> {
        let mut needed = Vec::new();
        let mut at = now;
        for a in &page.direct {
            let lazy_image = !shared.contains(a) && a.ends_with(".png");
            let is_cached = self.returning || cached.contains(a);
            if is_cached || (lazy_image && rng.f64() > cfg.lazy_image_fetch) {
                if is_cached && self.returning && rng.f64() < 0.1 {
                    // A revalidation: needed but cached.
                    hits.push(Hit {
                        ts_ms: at,
                        ip: self.ip.to_string(),
                        path: a.clone(),
                        status: 304,
                        bytes: 0,
                        referer: Some(page_url.to_string()),
                        user_agent: self.ua,
                    });
                }
                continue;
            }
            at += rng.i64(0..400);
            needed.push(a.clone());
            let partial = a.ends_with(".png") && rng.f64() < 0.02;
            hits.push(Hit {
                ts_ms: at,
                ip: self.ip.to_string(),
                path: a.clone(),
                status: if partial { 206 } else { 200 },
                bytes: if partial { 1024 } else { site.size(a) },
                referer: Some(page_url.to_string()),
                user_agent: self.ua,
            });
            cached.insert(a.clone());
        }
        for (css, a) in &page.via_css {
            if self.returning || cached.contains(a) {
                continue;
            }
            at += rng.i64(50..600);
            needed.push(a.clone());
            hits.push(Hit {
                ts_ms: at,
                ip: self.ip.to_string(),
                path: a.clone(),
                status: 200,
                bytes: site.size(a),
                referer: Some(format!("https://{}{css}", self.host)),
                user_agent: self.ua,
            });
            cached.insert(a.clone());
        }
        needed
    }
}

/// The generator's state while it draws visits.
struct Gen<'a> {
    rng: &'a mut fastrand::Rng,
    site: &'a SiteMap,
    cfg: &'a SynthConfig,
    shared: &'a HashSet<String>,
    hits: &'a mut Vec<Hit>,
    truth: &'a mut Vec<TruthView>,
}

impl Gen<'_> {
    /// Visitor `v`, starting at `t`: one or more page views with their asset requests.
    fn visit(&mut self, v: usize, t: i64) {
        let pages = &self.site.pages;
        let ip = format!(
            "{}.{}.{}.{}",
            10 + self.rng.u8(0..200),
            self.rng.u8(..),
            self.rng.u8(..),
            1 + self.rng.u8(0..250)
        );
        let bot = self.rng.f64() < self.cfg.bot_share;
        let ua = if bot {
            BOT_UAS[self.rng.usize(0..BOT_UAS.len())]
        } else {
            BROWSER_UAS[v % BROWSER_UAS.len()]
        };
        let returning = !bot && self.rng.f64() < self.cfg.returning_share;
        // A returning visitor has every asset of the site cached already (tracked by the flag,
        // not by a set of them all: that costs a copy of every asset per visit on big sites).
        let mut cached: HashSet<String> = HashSet::new();
        let n_pages = if bot {
            1 + self.rng.usize(0..3)
        } else {
            1 + (self.rng.f64() * self.rng.f64() * 5.0) as usize
        };
        let mut now = t;
        let mut prev: Option<String> = None;
        for _ in 0..n_pages {
            // Home is the most common entry; navigation picks any page.
            let page = if prev.is_none() && self.rng.f64() < 0.4 {
                &pages[0]
            } else {
                &pages[self.rng.usize(0..pages.len())]
            };
            let host = &self.cfg.hosts[self.rng.usize(0..self.cfg.hosts.len())];
            let referer = match &prev {
                Some(p) => Some(format!("https://{host}{p}")),
                None if self.rng.f64() < 0.5 => Some("https://www.google.com/".to_string()),
                None => None,
            };
            let query = if self.rng.f64() < 0.1 {
                "?utm_source=newsletter"
            } else {
                ""
            };
            self.hits.push(Hit {
                ts_ms: now,
                ip: ip.clone(),
                path: format!("{}{query}", page.path),
                status: 200,
                bytes: self.site.size(&page_file(&page.path)),
                referer,
                user_agent: ua,
            });
            let page_url = format!("https://{host}{}", page.path);
            let needed = if bot {
                Vec::new()
            } else {
                let visitor = Visitor {
                    ip: &ip,
                    ua,
                    returning,
                    host,
                };
                visitor.fetch_assets(
                    self.rng,
                    self.site,
                    page,
                    self.shared,
                    (now, &page_url),
                    &mut cached,
                    self.hits,
                    self.cfg,
                )
            };
            self.truth.push(TruthView {
                page: page.path.clone(),
                browser: !bot,
                needed,
            });
            prev = Some(page.path.clone());
            now += 5_000 + self.rng.i64(0..55_000);
        }
    }
}
