//! Traffic shaped like a real small site's access log (the default for learning benchmarks and
//! tests): mostly crawlers, mostly warm caches, a long Zipf tail of rarely seen pages in a few
//! sections, heavy slide-deck pages, Referer-less and hot-linked fetches, 301/304/206/404, whole
//! seconds shuffled within a minute.
//!
//! Why a model of its own: the example site's traffic (`synth`) is tidy — every page is popular
//! and every view is a cold browser — and a learner tuned on it fails on real logs. Each knob of
//! [`ShapedConfig`] is one property of real logs; the defaults match the log the learning issue
//! measured.

use std::collections::HashSet;

use pushwise_store::context::section_of;

use crate::synth::{BROWSER_UAS, Hit, shuffle_within_minutes};

/// Crawlers, feed readers, monitors and tools: they fetch pages, never assets.
pub const NON_BROWSER_UAS: [&str; 6] = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 5 subscribers)",
    "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
    "python-requests/2.31.0",
];

/// The model's knobs; [`ShapedConfig::default`] is the shape of a real personal site's log.
#[derive(Debug, Clone)]
pub struct ShapedConfig {
    pub seed: u64,
    /// Unix ms of the first request.
    pub start_ms: i64,
    /// Length of the log, ms.
    pub duration_ms: i64,
    /// About this many page views in all (crawlers included).
    pub page_views: usize,
    /// Distinct pages of the site.
    pub pages: usize,
    /// Zipf exponent of page popularity among browsers (crawlers spread evenly).
    pub zipf_s: f64,
    /// Share of page views made by crawlers, feed readers and monitors.
    pub crawler_share: f64,
    /// Share of browser visitors who come back with the site's shared assets cached.
    pub returning_share: f64,
    /// Share of browser visitors who fetch no assets at all (blockers, text browsers, prefetch).
    pub blocking_share: f64,
    /// Chance a browser visit goes on to another page of the site after each view.
    pub navigate_on: f64,
    /// Chance a lazily loaded image (below the fold) is fetched.
    pub lazy_fetch: f64,
    /// Share of asset requests logged without a Referer.
    pub no_referer_share: f64,
    /// Extra hot-linked image requests (external Referer, no page view), per browser view.
    pub hotlink_share: f64,
    /// Reorder lines within a minute, as log aggregation does.
    pub shuffle: bool,
    pub hosts: Vec<String>,
}

impl Default for ShapedConfig {
    fn default() -> Self {
        ShapedConfig {
            seed: 7,
            start_ms: 1_767_225_600_000, // 2026-01-01
            duration_ms: 4 * 24 * 3600 * 1000,
            page_views: 5_000,
            pages: 800,
            zipf_s: 1.05,
            crawler_share: 0.55,
            returning_share: 0.6,
            blocking_share: 0.35,
            navigate_on: 0.3,
            lazy_fetch: 0.75,
            no_referer_share: 0.25,
            hotlink_share: 0.05,
            shuffle: true,
            hosts: vec!["example.com".into(), "www.example.com".into()],
        }
    }
}

/// One asset of a page: its path, the stylesheet that references it (if not the HTML), size, and
/// whether it loads lazily.
#[derive(Debug, Clone)]
pub struct AssetRef {
    pub path: String,
    pub via: Option<String>,
    pub bytes: u64,
    pub lazy: bool,
    /// Shared by a whole section or the whole site (cached by returning visitors).
    pub shared: bool,
}

/// One page of the modelled site.
#[derive(Debug, Clone)]
pub struct SitePage {
    pub path: String,
    pub assets: Vec<AssetRef>,
}

/// One page view and what it really fetched: the ground truth the learning benchmark scores on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ViewTruth {
    pub ts_ms: i64,
    pub ip: String,
    pub user_agent: &'static str,
    pub page: String,
    /// As logged: absolute URL, or None.
    pub referer: Option<String>,
    pub browser: bool,
    /// Assets requested for this view (any status the browser used: 200, 206, 304).
    pub fetched: Vec<String>,
}

fn asset(path: String, via: Option<&str>, bytes: u64, lazy: bool, shared: bool) -> AssetRef {
    AssetRef {
        path,
        via: via.map(str::to_string),
        bytes,
        lazy,
        shared,
    }
}

/// The site every page of which shares a stylesheet, script, logo and font; sections add their
/// own template assets; pages add their own images (slide decks: dozens).
pub fn site(pages: usize, rng: &mut fastrand::Rng) -> Vec<SitePage> {
    let common = |extra: Vec<AssetRef>| {
        let mut v = vec![
            asset("/css/site.css".into(), None, 9_800, false, true),
            asset("/js/site.js".into(), None, 21_000, false, true),
            asset("/img/logo.svg".into(), None, 1_900, false, true),
            asset(
                "/fonts/body.woff2".into(),
                Some("/css/site.css"),
                31_000,
                false,
                true,
            ),
        ];
        v.extend(extra);
        v
    };
    let mut out = vec![
        SitePage {
            path: "/".into(),
            assets: common(vec![asset(
                "/img/portrait.jpg".into(),
                None,
                48_000,
                false,
                false,
            )]),
        },
        SitePage {
            path: "/about.html".into(),
            assets: common(vec![asset(
                "/img/portrait.jpg".into(),
                None,
                48_000,
                false,
                false,
            )]),
        },
    ];
    let mut n = 0usize;
    while out.len() < pages {
        n += 1;
        let roll = rng.f64();
        let page = if roll < 0.55 {
            let slug = format!("/blog/{}/post-{n}.html", 2015 + n % 11);
            let mut a = common(vec![
                asset("/css/blog.css".into(), None, 6_200, false, true),
                asset("/js/highlight.js".into(), None, 38_000, false, true),
            ]);
            for i in 0..rng.usize(0..3) {
                a.push(asset(
                    format!("/blog/img/post-{n}-{i}.png"),
                    None,
                    rng.u64(20_000..180_000),
                    i > 0,
                    false,
                ));
            }
            SitePage {
                path: slug,
                assets: a,
            }
        } else if roll < 0.72 {
            let mut a = common(vec![asset(
                "/css/projects.css".into(),
                None,
                4_100,
                false,
                true,
            )]);
            for i in 0..rng.usize(1..4) {
                a.push(asset(
                    format!("/projects/img/p{n}-{i}.png"),
                    None,
                    rng.u64(30_000..250_000),
                    i > 0,
                    false,
                ));
            }
            SitePage {
                path: format!("/projects/p{n}.html"),
                assets: a,
            }
        } else if roll < 0.80 {
            // Slide decks: their own template, no site chrome, 15-50 slide images.
            let mut a = vec![
                asset("/slides/reveal.css".into(), None, 12_000, false, true),
                asset("/slides/reveal.js".into(), None, 95_000, false, true),
                asset(
                    "/slides/fonts/slides.woff2".into(),
                    Some("/slides/reveal.css"),
                    28_000,
                    false,
                    true,
                ),
            ];
            for i in 0..rng.usize(15..51) {
                a.push(asset(
                    format!("/slides/deck-{n}/img/{i:02}.jpg"),
                    None,
                    rng.u64(15_000..120_000),
                    i > 2,
                    false,
                ));
            }
            SitePage {
                path: format!("/slides/deck-{n}/"),
                assets: a,
            }
        } else {
            let mut a = common(vec![asset(
                "/css/notes.css".into(),
                None,
                3_000,
                false,
                true,
            )]);
            if rng.f64() < 0.3 {
                a.push(asset(
                    format!("/notes/img/n{n}.svg"),
                    None,
                    rng.u64(3_000..30_000),
                    false,
                    false,
                ));
            }
            SitePage {
                path: format!("/notes/n{n}.html"),
                assets: a,
            }
        };
        out.push(page);
    }
    out
}

/// Cumulative Zipf weights over `n` ranks.
fn zipf_cdf(n: usize, s: f64) -> Vec<f64> {
    let mut acc = 0.0;
    let mut v: Vec<f64> = (1..=n)
        .map(|k| {
            acc += 1.0 / (k as f64).powf(s);
            acc
        })
        .collect();
    for x in &mut v {
        *x /= acc;
    }
    v
}

fn draw(cdf: &[f64], rng: &mut fastrand::Rng) -> usize {
    let u = rng.f64();
    cdf.partition_point(|&c| c < u).min(cdf.len() - 1)
}

/// A browser visitor as the log sees it, with what its cache holds.
struct Visitor {
    ip: String,
    ua: &'static str,
    cache: HashSet<String>,
    blocks: bool,
}

struct Gen<'a> {
    cfg: &'a ShapedConfig,
    rng: fastrand::Rng,
    site: Vec<SitePage>,
    /// Pages in popularity order (rank 0 = most popular) and its Zipf CDF.
    by_rank: Vec<usize>,
    cdf: Vec<f64>,
    hits: Vec<Hit>,
    truth: Vec<ViewTruth>,
    /// Views by crawlers so far.
    crawled: usize,
    visitors: Vec<Visitor>,
}

/// Draws the log. Returns the requests (sorted by time, shuffled within minutes when asked) and
/// the truth of every page view (sorted by time).
pub fn generate(cfg: &ShapedConfig) -> (Vec<Hit>, Vec<ViewTruth>) {
    let mut rng = fastrand::Rng::with_seed(cfg.seed);
    let site = site(cfg.pages.max(2), &mut rng);
    let mut by_rank: Vec<usize> = (1..site.len()).collect();
    rng.shuffle(&mut by_rank);
    by_rank.insert(0, 0); // the home page is the most popular
    let cdf = zipf_cdf(site.len(), cfg.zipf_s);
    let mut g = Gen {
        cfg,
        rng,
        site,
        by_rank,
        cdf,
        hits: Vec::new(),
        truth: Vec::new(),
        crawled: 0,
        visitors: Vec::new(),
    };
    while g.truth.len() < cfg.page_views {
        let t = cfg.start_ms + g.rng.i64(0..cfg.duration_ms.max(1));
        // Crawler visits are longer than browser ones: keep the share of *views* on target.
        if (g.crawled as f64) < cfg.crawler_share * (g.truth.len() + 1) as f64 {
            g.crawler_visit(t);
        } else {
            g.browser_visit(t);
        }
    }
    let Gen {
        mut hits,
        mut truth,
        mut rng,
        ..
    } = g;
    hits.sort_by_key(|h| h.ts_ms);
    if cfg.shuffle {
        shuffle_within_minutes(&mut hits, &mut rng);
    }
    truth.sort_by_key(|v| v.ts_ms);
    (hits, truth)
}

impl Gen<'_> {
    fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.cfg.hosts[0])
    }

    fn popular_page(&mut self) -> usize {
        let r = draw(&self.cdf, &mut self.rng);
        self.by_rank[r]
    }

    fn hit(&mut self, ts_ms: i64, ip: &str, path: &str, status: u16, bytes: u64) -> &mut Hit {
        // Logs have whole seconds.
        self.hits.push(Hit {
            ts_ms: ts_ms / 1000 * 1000,
            ip: ip.to_string(),
            path: path.to_string(),
            status,
            bytes,
            referer: None,
            user_agent: "-",
        });
        self.hits.last_mut().expect("just pushed")
    }

    fn crawler_visit(&mut self, mut t: i64) {
        let ua = NON_BROWSER_UAS[self.rng.usize(..NON_BROWSER_UAS.len())];
        let ip = format!("66.249.{}.{}", self.rng.u8(..), self.rng.u8(1..255));
        for _ in 0..self.rng.usize(1..6) {
            // Crawlers reach the long tail as often as the head; monitors poll the home page.
            let p = if ua.contains("Uptime") {
                0
            } else {
                self.rng.usize(..self.site.len())
            };
            let path = self.site[p].path.clone();
            let status = match self.rng.u8(..100) {
                0..=3 => 404,
                4..=7 => 301,
                8..=15 => 304,
                _ => 200,
            };
            let path = if status == 404 {
                format!("/wp-login.php?x={}", self.rng.u32(..))
            } else {
                path
            };
            self.hit(t, &ip, &path, status, 5_000).user_agent = ua;
            if status != 404 && status != 301 {
                self.crawled += 1;
                self.truth.push(ViewTruth {
                    ts_ms: t / 1000 * 1000,
                    ip: ip.clone(),
                    user_agent: ua,
                    page: path,
                    referer: None,
                    browser: false,
                    fetched: Vec::new(),
                });
            }
            t += self.rng.i64(1_000..30_000);
        }
    }

    fn visitor(&mut self) -> usize {
        let returning = self.rng.f64() < self.cfg.returning_share;
        if returning && !self.visitors.is_empty() && self.rng.bool() {
            return self.rng.usize(..self.visitors.len());
        }
        let mut cache = HashSet::new();
        if returning {
            // Came before the log began: the site's shared assets are cached, and so is all of
            // what the most popular pages use.
            for p in &self.site {
                cache.extend(p.assets.iter().filter(|a| a.shared).map(|a| a.path.clone()));
            }
            for &p in &self.by_rank[..self.by_rank.len().min(150)] {
                cache.extend(self.site[p].assets.iter().map(|a| a.path.clone()));
            }
        }
        let v = Visitor {
            ip: format!(
                "{}.{}.{}.{}",
                self.rng.u8(1..224),
                self.rng.u8(..),
                self.rng.u8(..),
                self.rng.u8(1..255)
            ),
            ua: BROWSER_UAS[self.rng.usize(..BROWSER_UAS.len())],
            cache,
            blocks: self.rng.f64() < self.cfg.blocking_share,
        };
        self.visitors.push(v);
        self.visitors.len() - 1
    }

    fn browser_visit(&mut self, mut t: i64) {
        let who = self.visitor();
        let mut page = self.popular_page();
        // Three quarters enter from outside: a search engine or no Referer at all.
        let mut referer = match self.rng.u8(..4) {
            0 => None,
            1 => Some("https://www.google.com/".to_string()),
            2 => Some("https://news.ycombinator.com/item?id=1".to_string()),
            _ => {
                // From another page of the site (a tab left open): navigating inside it.
                let from = self.popular_page();
                Some(self.url(&self.site[from].path))
            }
        };
        loop {
            self.view(who, page, t, referer.clone());
            if self.rng.f64() >= self.cfg.navigate_on {
                break;
            }
            referer = Some(self.url(&self.site[page].path));
            // Inside the site: half the time the same section, else anywhere by popularity.
            let section = section_of(&self.site[page].path);
            page = if self.rng.bool() {
                let same: Vec<usize> = (0..self.site.len())
                    .filter(|&i| section_of(&self.site[i].path) == section)
                    .collect();
                same[self.rng.usize(..same.len())]
            } else {
                self.popular_page()
            };
            t += self.rng.i64(3_000..90_000);
        }
    }

    /// One browser page view: the page request, then each asset not cached (lazy ones maybe).
    fn view(&mut self, who: usize, page: usize, t: i64, referer: Option<String>) {
        let ip = self.visitors[who].ip.clone();
        let ua = self.visitors[who].ua;
        let path = self.site[page].path.clone();
        let h = self.hit(t, &ip, &path, 200, 14_000);
        h.user_agent = ua;
        h.referer = referer.clone();
        let page_url = self.url(&path);
        let mut fetched = Vec::new();
        if !self.visitors[who].blocks {
            for a in self.site[page].assets.clone() {
                let cached = self.visitors[who].cache.contains(&a.path);
                let status = if cached {
                    if self.rng.f64() >= 0.04 {
                        continue; // fresh in the cache: no request at all
                    }
                    304
                } else if a.lazy && self.rng.f64() >= self.cfg.lazy_fetch {
                    continue;
                } else if a.bytes > 100_000 && self.rng.f64() < 0.05 {
                    206
                } else {
                    200
                };
                let delay = match (&a.via, a.lazy) {
                    (_, true) => self.rng.i64(600..6_000),
                    (Some(_), false) => self.rng.i64(150..900),
                    (None, false) => self.rng.i64(20..400),
                };
                let r = if self.rng.f64() < self.cfg.no_referer_share {
                    None
                } else {
                    Some(
                        a.via
                            .as_deref()
                            .map_or(page_url.clone(), |css| self.url(css)),
                    )
                };
                let bytes = if status == 304 { 0 } else { a.bytes };
                let h = self.hit(t + delay, &ip, &a.path, status, bytes);
                h.user_agent = ua;
                h.referer = r;
                self.visitors[who].cache.insert(a.path.clone());
                fetched.push(a.path);
            }
        }
        if self.rng.f64() < self.cfg.hotlink_share {
            self.hotlink(t);
        }
        self.truth.push(ViewTruth {
            ts_ms: t / 1000 * 1000,
            ip,
            user_agent: ua,
            page: path,
            referer,
            browser: true,
            fetched,
        });
    }

    /// An image of some page fetched from another site's page: no view, external Referer.
    fn hotlink(&mut self, t: i64) {
        let p = self.rng.usize(..self.site.len());
        let Some(a) = self.site[p].assets.iter().rfind(|a| !a.shared).cloned() else {
            return;
        };
        let ip = format!("172.16.{}.{}", self.rng.u8(..), self.rng.u8(1..255));
        let h = self.hit(t + 500, &ip, &a.path, 200, a.bytes);
        h.user_agent = BROWSER_UAS[0];
        h.referer = Some("https://forum.example.net/t/42".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default shape is the one the learning issue measured on a real log.
    #[test]
    fn the_default_shape_matches_the_real_log() {
        let (hits, truth) = generate(&ShapedConfig {
            page_views: 20_000,
            ..ShapedConfig::default()
        });
        let n = truth.len() as f64;
        let crawlers = truth.iter().filter(|v| !v.browser).count() as f64 / n;
        assert!((0.45..0.65).contains(&crawlers), "crawler share {crawlers}");
        let browsers: Vec<&ViewTruth> = truth.iter().filter(|v| v.browser).collect();
        let fetching: Vec<&&ViewTruth> =
            browsers.iter().filter(|v| !v.fetched.is_empty()).collect();
        let share = fetching.len() as f64 / browsers.len() as f64;
        assert!((0.3..0.55).contains(&share), "fetching share {share}");
        let mut counts: Vec<usize> = fetching.iter().map(|v| v.fetched.len()).collect();
        counts.sort_unstable();
        let median = counts[counts.len() / 2];
        assert!((3..=6).contains(&median), "median assets {median}");
        assert!(*counts.last().unwrap() >= 30, "a slide deck fetches dozens");
        // A long tail: most pages are seen fewer than 5 times by browsers.
        let mut per_page = std::collections::HashMap::<&str, usize>::new();
        for v in &browsers {
            *per_page.entry(v.page.as_str()).or_default() += 1;
        }
        let rare = per_page.values().filter(|&&c| c < 5).count() as f64 / per_page.len() as f64;
        assert!(rare > 0.5, "rare page share {rare}");
        // A quarter of asset requests carry no Referer.
        let assets: Vec<&Hit> = hits
            .iter()
            .filter(|h| !h.path.ends_with(".html") && !h.path.ends_with('/') && h.status != 404)
            .collect();
        let bare =
            assets.iter().filter(|h| h.referer.is_none()).count() as f64 / assets.len() as f64;
        assert!((0.15..0.35).contains(&bare), "no-Referer share {bare}");
        println!(
            "crawler views {crawlers:.2}, browser views fetching any asset {share:.2}, median \
             assets {median}, p90 {}, max {}, pages seen < 5 times by browsers {rare:.2}, asset \
             requests without Referer {bare:.2}",
            counts[counts.len() * 9 / 10],
            counts.last().unwrap()
        );
    }
}
