//! Tests of the learner as a whole: attribution, estimates and selection on small event streams.

use pushwise_store::Context;
use pushwise_store::rows::{EventRow, PinAction, Reason, SetRow};

use crate::attribute::{Views, attribute};
use crate::estimate::{Estimates, estimate};
use crate::params::{LearnParams, SelectParams};
use crate::select::select;

/// A tiny builder of event rows for one client.
struct Ev {
    rows: Vec<EventRow>,
}

impl Ev {
    fn new() -> Self {
        Ev { rows: Vec::new() }
    }
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        client: i64,
        conn: i64,
        ts: i64,
        path: &str,
        page: bool,
        referer: Option<&str>,
        push: i64,
        bytes: i64,
    ) -> &mut Self {
        let id = self.rows.len() as i64 + 1;
        self.rows.push(EventRow {
            id,
            ts_ms: ts,
            client,
            conn_id: conn,
            path: path.into(),
            status: 200,
            bytes,
            referer: referer.map(String::from),
            referer_external: false,
            is_page: page,
            browser: true,
            cacheable: true,
            push,
            holdout: false,
            over_cap: false,
            source: 0,
            fetch: true,
            head: false,
        });
        self
    }
    fn page(&mut self, client: i64, ts: i64, path: &str) -> &mut Self {
        self.add(client, client, ts, path, true, None, 0, 3000)
    }
    fn asset(&mut self, client: i64, ts: i64, path: &str, referer: Option<&str>) -> &mut Self {
        self.add(client, client, ts, path, false, referer, 0, 1000)
    }
}

fn probability(views: &Views, est: &Estimates, page: &str, asset: &str) -> (f64, i64) {
    let pid = views.paths.iter().position(|p| p == page).unwrap() as u32;
    let aid = views.paths.iter().position(|p| p == asset).unwrap() as u32;
    let pe = &est[&(pid, Context::PageWide)];
    pe.probability(&pe.assets[&aid])
}

#[test]
fn referer_chains_attribute_css_images_to_the_page_view() {
    let mut e = Ev::new();
    e.page(1, 0, "/a.html")
        .asset(1, 100, "/site.css", Some("/a.html"))
        .asset(1, 200, "/bg.png", Some("/site.css"))
        .page(1, 60_000, "/b.html")
        .asset(1, 60_100, "/b.png", Some("/b.html"));
    let v = attribute(&e.rows, &LearnParams::default());
    assert_eq!(v.views.len(), 2);
    let names = |i: usize| -> Vec<&str> {
        v.views[i]
            .needed
            .iter()
            .map(|(a, _)| v.paths[*a as usize].as_str())
            .collect()
    };
    let mut a = names(0);
    a.sort();
    assert_eq!(a, ["/bg.png", "/site.css"]);
    assert_eq!(names(1), ["/b.png"]);
}

#[test]
fn shuffled_seconds_still_attribute_by_referer_and_chain() {
    // The image is logged before its CSS, and both before the page (log aggregation).
    let mut e = Ev::new();
    e.asset(1, 1_000, "/bg.png", Some("/site.css"))
        .asset(1, 2_000, "/site.css", Some("/a.html"))
        .page(1, 3_000, "/a.html");
    let v = attribute(&e.rows, &LearnParams::default());
    assert_eq!(v.views.len(), 1);
    assert_eq!(v.views[0].needed.len(), 2);
}

#[test]
fn time_window_attributes_refererless_requests_on_the_same_connection_only() {
    let mut e = Ev::new();
    e.page(1, 0, "/a.html")
        .asset(1, 5_000, "/near.js", None)
        .asset(1, 30_000, "/late.js", None)
        .add(1, 99, 1_000, "/other-conn.js", false, None, 0, 10);
    let v = attribute(&e.rows, &LearnParams::default());
    let got: Vec<&str> = v.views[0]
        .needed
        .iter()
        .map(|(a, _)| v.paths[*a as usize].as_str())
        .collect();
    assert_eq!(got, ["/near.js"]);
    assert_eq!(v.unattributed, 2);
}

#[test]
fn decay_makes_recent_views_count_more() {
    let day = 86_400_000;
    let mut e = Ev::new();
    // 10 old views fetched /old.png; 10 recent views fetched /new.png.
    for c in 0..10 {
        e.page(c, 0, "/p").asset(c, 10, "/old.png", Some("/p"));
    }
    for c in 10..20 {
        e.page(c, 28 * day, "/p")
            .asset(c, 28 * day + 10, "/new.png", Some("/p"));
    }
    let v = attribute(&e.rows, &LearnParams::default());
    let est = estimate(&v.views, 28 * day, 7 * day);
    let (p_old, _) = probability(&v, &est, "/p", "/old.png");
    let (p_new, _) = probability(&v, &est, "/p", "/new.png");
    // Weights 1/16 vs 1: old = (10/16) / (10/16 + 10) ≈ 0.059, new ≈ 0.94.
    assert!((p_old - 0.0588).abs() < 0.01, "{p_old}");
    assert!((p_new - 0.941).abs() < 0.01, "{p_new}");
}

#[test]
fn pushed_views_do_not_bias_the_estimate() {
    // True need: 40%. Pushed on 90 of 100 views: those say nothing; 10 holdout views decide.
    let mut e = Ev::new();
    for c in 0..100 {
        e.page(c, c * 1000, "/p");
        if c < 90 {
            e.add(c, c, c * 1000 + 1, "/a.css", false, Some("/p"), 1, 500);
        } else if c < 94 {
            e.asset(c, c * 1000 + 5, "/a.css", Some("/p"));
        }
    }
    let v = attribute(&e.rows, &LearnParams::default());
    let est = estimate(&v.views, 100_000, i64::MAX / 4);
    let (p, support) = probability(&v, &est, "/p", "/a.css");
    assert_eq!(support, 10);
    assert!((p - 0.4).abs() < 1e-6, "{p}");
}

fn learn_select(e: &Ev, sp: &SelectParams) -> Vec<SetRow> {
    let v = attribute(&e.rows, &LearnParams::default());
    let est = estimate(&v.views, 0, i64::MAX / 4);
    select(&v, &est, sp)
        .1
        .into_iter()
        .filter(|r| r.context.is_page_wide())
        .collect()
}

fn many_views(n: i64, assets: &[(&str, i64, i64)]) -> Ev {
    // assets: (path, views out of n that fetch it, bytes)
    let mut e = Ev::new();
    for c in 0..n {
        e.page(c, 0, "/p");
        for (i, (a, k, b)) in assets.iter().enumerate() {
            if c < *k {
                e.add(c, c, 10 + i as i64, a, false, Some("/p"), 0, *b);
            }
        }
    }
    e
}

#[test]
fn thresholds_support_and_overrides_decide_membership() {
    let e = many_views(30, &[("/hot.css", 30, 100), ("/warm.js", 12, 100)]);
    let rows = learn_select(&e, &SelectParams::default());
    let r = |n: &str| rows.iter().find(|r| r.asset == n).unwrap().clone();
    assert!(r("/hot.css").in_set);
    assert_eq!(r("/warm.js").reason, Reason::BelowThreshold);
    let mut sp = SelectParams::default();
    sp.overrides.insert(
        "/p".into(),
        pushwise_store::rows::ThresholdRow {
            page: "/p".into(),
            probability: Some(0.3),
            min_support: None,
            max_count: None,
            max_bytes: None,
            quiet_after: None,
        },
    );
    let rows = learn_select(&e, &sp);
    assert!(rows.iter().find(|r| r.asset == "/warm.js").unwrap().in_set);
    let sp = SelectParams {
        min_support: 50,
        ..Default::default()
    };
    let rows = learn_select(&e, &sp);
    assert!(rows.iter().all(|r| r.reason == Reason::LowSupport));
}

#[test]
fn count_and_byte_caps_keep_the_earliest_assets() {
    let e = many_views(
        25,
        &[
            ("/1.css", 25, 300_000),
            ("/2.js", 25, 300_000),
            ("/3.png", 25, 10),
            ("/4.png", 25, 10),
        ],
    );
    let rows = learn_select(&e, &SelectParams::default());
    let reason = |n: &str| rows.iter().find(|r| r.asset == n).unwrap().reason;
    assert_eq!(reason("/1.css"), Reason::Ok);
    assert_eq!(reason("/2.js"), Reason::OverBytes);
    assert_eq!(reason("/3.png"), Reason::Ok);
    let sp = SelectParams {
        max_count: 2,
        ..Default::default()
    };
    let rows = learn_select(&e, &sp);
    let reason = |n: &str| rows.iter().find(|r| r.asset == n).unwrap().reason;
    assert_eq!(reason("/4.png"), Reason::OverCount);
}

#[test]
fn pins_and_bans_override_the_estimate() {
    let e = many_views(25, &[("/a.css", 25, 100), ("/b.js", 2, 100)]);
    let mut sp = SelectParams::default();
    sp.pins.insert(
        "/p".into(),
        vec![
            ("/a.css".into(), PinAction::Ban),
            ("/b.js".into(), PinAction::Pin),
        ],
    );
    let rows = learn_select(&e, &sp);
    let r = |n: &str| rows.iter().find(|r| r.asset == n).unwrap().clone();
    assert_eq!(r("/a.css").reason, Reason::Banned);
    assert!(r("/b.js").in_set);
    assert_eq!(r("/b.js").reason, Reason::Pinned);
}

#[test]
fn crawler_views_get_no_set_and_do_not_dilute_the_browser_estimates() {
    // Browsers entering the site fetch the CSS; bots (twice as many views) never do.
    let mut e = Ev::new();
    for c in 0..30 {
        e.page(c, 0, "/p").asset(c, 5, "/a.css", Some("/p"));
    }
    for c in 100..160 {
        e.page(c, 0, "/p");
        e.rows.last_mut().unwrap().browser = false;
    }
    let v = attribute(&e.rows, &LearnParams::default());
    let est = estimate(&v.views, 0, i64::MAX / 4);
    let (stats, rows) = select(&v, &est, &SelectParams::default());
    let stat = |ctx: Context| stats.iter().find(|s| s.page == "/p" && s.context == ctx);
    assert_eq!(stat(Context::BrowserEntry).map(|s| s.uses_own), Some(true));
    assert_eq!(stat(Context::OtherEntry).map(|s| s.uses_own), Some(false));
    assert_eq!(stat(Context::OtherEntry).map(|s| s.views), Some(60));
    assert!(!rows.iter().any(|r| r.context == Context::OtherEntry));
    let in_set = |ctx: Context| {
        rows.iter()
            .any(|r| r.page == "/p" && r.context == ctx && r.asset == "/a.css" && r.in_set)
    };
    assert!(in_set(Context::BrowserEntry));
    // Page-wide counts browser views only: 30 of 30, not 30 of 90.
    assert_eq!(stat(Context::PageWide).map(|s| s.views), Some(30));
    assert!(in_set(Context::PageWide));
}

#[test]
fn a_rarely_seen_page_backs_off_to_its_section() {
    use pushwise_store::sets::SetSource;
    // Twenty pages under /blog/ each seen 3 times, all fetching the site CSS; one more seen twice.
    let mut e = Ev::new();
    let mut c = 0;
    for p in 0..21 {
        let page = format!("/blog/post-{p}.html");
        for _ in 0..(if p == 20 { 2 } else { 3 }) {
            e.page(c, 0, &page)
                .asset(c, 5, "/css/site.css", Some(&page));
            c += 1;
        }
    }
    let v = attribute(&e.rows, &LearnParams::default());
    let est = estimate(&v.views, 0, i64::MAX / 4);
    let sp = SelectParams {
        min_support: 5,
        ..SelectParams::default()
    };
    let (stats, rows) = select(&v, &est, &sp);
    let page = stats
        .iter()
        .find(|s| s.page == "/blog/post-20.html" && s.context.is_page_wide())
        .unwrap();
    assert!(!page.uses_own, "2 views are fewer than the minimum support");
    let section = stats
        .iter()
        .find(|s| s.page == "section:/blog/" && s.context.is_page_wide())
        .unwrap();
    assert_eq!(section.views, 62);
    assert!(section.uses_own);
    assert!(rows.iter().any(|r| r.page == "section:/blog/"
        && r.context.is_page_wide()
        && r.asset == "/css/site.css"
        && r.in_set));
    // And the server's rule picks it, for this page and for one never seen.
    let sets = pushwise_store::PushSets::new();
    sets.replace(1, pushwise_store::PushSets::plans_from_rows(rows, stats));
    for p in ["/blog/post-20.html", "/blog/never-seen.html"] {
        let d = sets.decide(p, Context::BrowserEntry);
        // All 62 section views entered the site: the section has its own set for that context.
        assert_eq!(d.source, SetSource::SectionContext, "{p}");
        assert_eq!(d.assets[0].path, "/css/site.css");
    }
    let d = sets.decide("/blog/post-20.html", Context::OtherEntry);
    assert_eq!(d.source, SetSource::NotBrowser);
    assert!(d.assets.is_empty());
    let d = sets.decide("/blog/never-seen.html", Context::BrowserInternal);
    assert_eq!(d.source, SetSource::Section);
    assert_eq!(d.assets[0].path, "/css/site.css");
    let d = sets.decide("/docs/x.html", Context::BrowserEntry);
    assert_eq!(d.source, SetSource::None);
    assert!(d.assets.is_empty());
}

#[test]
fn assets_far_below_the_threshold_get_no_row_unless_pinned_or_banned() {
    // Threshold 0.5: rows are kept down to 0.05.
    let e = many_views(
        100,
        &[
            ("/hot.css", 100, 100),
            ("/near.js", 8, 100),
            ("/rare.png", 1, 100),
            ("/rare.gif", 1, 100),
        ],
    );
    let rows = learn_select(&e, &SelectParams::default());
    let has = |rows: &[SetRow], n: &str| rows.iter().any(|r| r.asset == n);
    assert!(has(&rows, "/hot.css") && has(&rows, "/near.js"));
    assert!(!has(&rows, "/rare.png") && !has(&rows, "/rare.gif"));
    let mut sp = SelectParams::default();
    sp.pins.insert(
        "/p".into(),
        vec![
            ("/rare.png".into(), PinAction::Pin),
            ("/rare.gif".into(), PinAction::Ban),
        ],
    );
    let rows = learn_select(&e, &sp);
    let r = |n: &str| rows.iter().find(|r| r.asset == n).unwrap().reason;
    assert_eq!(r("/rare.png"), Reason::Pinned);
    assert_eq!(r("/rare.gif"), Reason::Banned);
    // A lower threshold lowers the floor with it.
    let sp = SelectParams {
        threshold: 0.05,
        ..Default::default()
    };
    assert!(has(&learn_select(&e, &sp), "/rare.png"));
}
