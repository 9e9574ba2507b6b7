//! The incremental learner against a rebuild: however a stream of events is cut into passes, the
//! learned probabilities and supports are those of one rebuild over the same events.

use std::collections::BTreeMap;

use proptest::prelude::*;
use pushwise_store::{Event, PushMark, Referer, Store};

use crate::params::LearnParams;
use crate::pass::{rebuild, run_pass};

const PAGES: [&str; 3] = ["/", "/a.html", "/b.html"];
const ASSETS: [&str; 4] = ["/s.css", "/app.js", "/i.png", "/f.woff2"];
/// The import's file fingerprint.
const IMPORT: i64 = 4242;

/// One generated page view: who, when, which page, and its asset requests as (asset, delay ms,
/// how: 0 Referer = page, 1 no Referer, 2 Referer = previous asset, 3 pushed).
#[derive(Debug, Clone)]
struct Visit {
    client: i64,
    ts: i64,
    page: usize,
    entry: bool,
    browser: bool,
    assets: Vec<(usize, i64, u8)>,
}

fn visit() -> impl Strategy<Value = Visit> {
    (
        0i64..6,
        0i64..3_600_000,
        0usize..PAGES.len(),
        any::<bool>(),
        prop::bool::weighted(0.8),
        prop::collection::vec((0usize..ASSETS.len(), 0i64..8_000, 0u8..4), 0..4),
    )
        .prop_map(|(client, ts, page, entry, browser, assets)| Visit {
            client,
            ts,
            page,
            entry,
            browser,
            assets,
        })
}

fn event(ts: i64, client: i64, path: &str, page: bool, referer: Referer) -> Event {
    Event {
        ts_ms: ts,
        client,
        conn_id: client,
        stream_id: 0,
        method: "GET".into(),
        path: path.to_string().into(),
        status: 200,
        bytes: 1000,
        content_type: None,
        referer,
        is_page: page,
        browser: true,
        cacheable: true,
        push: PushMark::Requested,
        holdout: false,
        over_cap: false,
        source: None,
        source_line: None,
    }
}

/// The events of visits, in time order (ties by generation order).
fn events_of(visits: &[Visit], base: i64) -> Vec<Event> {
    let mut out = Vec::new();
    for v in visits {
        let t = base + v.ts;
        let referer = if v.entry {
            Referer::External
        } else {
            Referer::SameSite("/".into())
        };
        let mut page = event(t, v.client, PAGES[v.page], true, referer);
        page.browser = v.browser;
        // Some views are over their network's cap: they must teach nothing, however cut.
        page.over_cap = v.ts % 7 == 0;
        out.push(page);
        let mut prev = PAGES[v.page];
        for &(a, delay, how) in &v.assets {
            let referer = match how {
                1 => Referer::None,
                2 => Referer::SameSite(prev.to_string()),
                _ => Referer::SameSite(PAGES[v.page].to_string()),
            };
            let mut e = event(t + 1 + delay, v.client, ASSETS[a], false, referer);
            e.browser = v.browser;
            if how == 3 {
                e.push = PushMark::Pushed;
            }
            out.push(e);
            prev = ASSETS[a];
        }
    }
    out.sort_by_key(|e| e.ts_ms);
    out
}

/// Every candidate of the newest generation: (page, context, asset) → (probability, support).
async fn learned(store: &Store) -> BTreeMap<(String, String, String), (f64, i64)> {
    let g = store.latest_generation().await.unwrap().unwrap();
    store
        .set_rows(g, false, None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                (r.page, r.context.as_str().to_string(), r.asset),
                (r.probability, r.support),
            )
        })
        .collect()
}

/// Live traffic (written in time order, a few seconds late at most, so later events are never
/// older than a pass's clock minus the lateness) with an old import arriving in the middle.
fn stream(live: &[Visit], import: &[Visit], import_at: usize) -> (Vec<Event>, usize, usize) {
    let mut events = events_of(live, 1_700_000_000_000);
    // Reorder neighbours a little, as responses finish out of order.
    for i in (1..events.len()).step_by(3) {
        if events[i].ts_ms - events[i - 1].ts_ms < 5_000 {
            events.swap(i - 1, i);
        }
    }
    let mut imported = events_of(import, 1_690_000_000_000);
    for (i, e) in imported.iter_mut().enumerate() {
        e.client += 100;
        e.source = Some(IMPORT);
        e.source_line = Some(i as i64 + 1);
    }
    let at = import_at.min(events.len());
    let n = imported.len();
    events.splice(at..at, imported);
    (events, at, at + n)
}

fn run(live: Vec<Visit>, import: Vec<Visit>, import_at: usize, cuts: Vec<usize>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let inc = Store::open(&dir.path().join("inc.db")).await.unwrap();
        let all = Store::open(&dir.path().join("all.db")).await.unwrap();
        compare(&inc, &all, live, import, import_at, cuts).await;
    });
}

/// Cuts the stream into passes on `inc` and rebuilds it in one go on `all` (two empty stores,
/// of either backend), and asserts that both learned the same.
async fn compare(
    inc: &Store,
    all: &Store,
    live: Vec<Visit>,
    import: Vec<Visit>,
    import_at: usize,
    cuts: Vec<usize>,
) {
    {
        let (events, import_from, import_to) = stream(&live, &import, import_at);
        let lp = LearnParams {
            half_life_ms: 3_600_000,
            // Small, so the bound on a session's length is cut across passes too.
            max_session_events: 7,
            ..Default::default()
        };
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (events.len() + 1)).collect();
        cuts.push(events.len());
        cuts.sort_unstable();
        let (mut done_at, mut start, mut now) = (false, 0, 0i64);
        for cut in cuts {
            inc.insert_events(&events[start..cut]).await.unwrap();
            for e in &events[start..cut] {
                if e.source.is_none() {
                    now = now.max(e.ts_ms);
                }
            }
            if !done_at && cut >= import_to && import_to > import_from {
                inc.mark_source_done(IMPORT).await.unwrap();
                done_at = true;
            }
            start = cut;
            run_pass(inc, &lp, now + 1).await.unwrap();
        }
        let end = events.iter().map(|e| e.ts_ms).max().unwrap_or(0) + 1;
        run_pass(inc, &lp, end).await.unwrap();

        all.insert_events(&events).await.unwrap();
        if import_to > import_from {
            all.mark_source_done(IMPORT).await.unwrap();
        }
        rebuild(all, &lp, end, &mut |_, _| {}).await.unwrap();

        let (a, b) = (learned(inc).await, learned(all).await);
        assert_eq!(
            a.keys().collect::<Vec<_>>(),
            b.keys().collect::<Vec<_>>(),
            "candidates differ"
        );
        for (k, (p, s)) in &a {
            let (q, t) = b[k];
            assert_eq!(*s, t, "support of {k:?}");
            assert!(
                (p - q).abs() <= 1e-9 * p.abs().max(q.abs()).max(1e-300),
                "probability of {k:?}: {p} incremental vs {q} rebuilt"
            );
        }
    }
}

/// The fleet store runs the same learner: passes on PostgreSQL learn what a rebuild on SQLite
/// learns, for random streams and cuts (a few cases: each needs two fresh databases).
#[test]
fn passes_on_postgres_learn_what_a_rebuild_on_sqlite_learns() {
    let cluster = pushwise_store::pg_cluster::PgCluster::start().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(6));
    let case = std::cell::Cell::new(0);
    let strategy = (
        prop::collection::vec(visit(), 1..40),
        prop::collection::vec(visit(), 0..15),
        0usize..200,
        prop::collection::vec(0usize..300, 0..6),
    );
    runner
        .run(&strategy, |(live, import, import_at, cuts)| {
            case.set(case.get() + 1);
            let url = cluster
                .create_database(&format!("c{}", case.get()))
                .unwrap();
            rt.block_on(async {
                let loc = pushwise_store::Location::parse(&url).unwrap();
                let inc = Store::open_at(&loc).await.unwrap();
                let dir = tempfile::tempdir().unwrap();
                let all = Store::open(&dir.path().join("all.db")).await.unwrap();
                compare(&inc, &all, live, import, import_at, cuts).await;
                inc.close().await;
            });
            Ok(())
        })
        .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_cut_into_passes_learns_what_one_rebuild_learns(
        live in prop::collection::vec(visit(), 1..40),
        import in prop::collection::vec(visit(), 0..15),
        import_at in 0usize..200,
        cuts in prop::collection::vec(0usize..300, 0..6),
    ) {
        run(live, import, import_at, cuts);
    }
}

/// A view as names, independent of the path ids one attribution happened to give.
type NamedView = (
    i64,
    i64,
    String,
    String,
    bool,
    bool,
    Vec<(String, i64)>,
    Vec<String>,
);

fn named(v: &crate::attribute::Views) -> Vec<NamedView> {
    let name = |id: u32| v.paths[id as usize].clone();
    let mut out: Vec<NamedView> = v
        .views
        .iter()
        .map(|x| {
            let mut needed: Vec<(String, i64)> =
                x.needed.iter().map(|&(a, d)| (name(a), d)).collect();
            needed.sort();
            let mut unknown: Vec<String> = x.unknown.iter().map(|&a| name(a)).collect();
            unknown.sort();
            let context = x.context.as_str().to_string();
            (
                x.client,
                x.ts_ms,
                name(x.page),
                context,
                x.holdout,
                x.over_cap,
                needed,
                unknown,
            )
        })
        .collect();
    out.sort();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// `tune` reads its window one bucket of clients at a time to bound its memory: the views,
    /// the unattributed count and what each path's responses said must be those of one read.
    #[test]
    fn tune_s_window_read_by_buckets_of_clients_attributes_what_one_read_does(
        visits in prop::collection::vec(visit(), 1..40),
        at_once in 1i64..60,
    ) {
        let events = events_of(&visits, 1_700_000_000_000);
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(&dir.path().join("t.db")).await.unwrap();
            store.insert_events(&events).await.unwrap();
            let lp = LearnParams::default();
            let n = store.max_event_id().await.unwrap();
            let one = crate::attribute::attribute(&store.load_events_after(0).await.unwrap(), &lp);
            let by = crate::tune::attribute_window(&store, &lp, 0, n, at_once).await.unwrap();
            assert_eq!(named(&by), named(&one));
            assert_eq!(by.unattributed, one.unattributed);
            let info = |v: &crate::attribute::Views| {
                let mut rows: Vec<(String, i64, i64, bool, bool, u16, i64)> = v
                    .paths
                    .iter()
                    .zip(&v.info)
                    .map(|(p, i)| (p.clone(), i.bytes_sum, i.bytes_n, i.cacheable, i.saw_ok, i.last_status, i.last_id))
                    .collect();
                rows.sort();
                rows
            };
            assert_eq!(info(&by), info(&one));
        });
    }
}
