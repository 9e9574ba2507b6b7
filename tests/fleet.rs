//! Fleet mode end to end: pushwise servers sharing one real PostgreSQL store learn from all of
//! their traffic, run one analyzer pass at a time, and push the same sets.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use pushwise_bench::site::SiteMap;
use pushwise_store::pg_cluster::PgCluster;

/// Serves the example site on the fleet database `db`: no analyzer of its own, no holdout (every
/// view gets the set), and a poll interval long enough that only the generation notices can make
/// it load a new generation within the test.
fn fleet_server(db: &str, extra: &[&str]) -> Server {
    let root = site();
    let mut args = vec![
        "--root",
        root.to_str().unwrap(),
        "--analyze-every",
        "0",
        "--holdout",
        "0",
        "--reload-every-ms",
        "600s",
    ];
    args.extend_from_slice(extra);
    Server::start_with_db(&args, tempfile::tempdir().unwrap(), PathBuf::from(db))
}

/// One browser view of `page` (its HTML-linked and CSS-found assets fetched on one connection)
/// from a client of its own.
fn browser_view(s: &Server, page: &pushwise_bench::site::Page, client: usize) {
    let ua = format!("{} client/{client}", pushwise_bench::synth::BROWSER_UAS[0]);
    let mut args = vec![
        "-n".to_string(),
        "-H".into(),
        format!("user-agent: {ua}"),
        "-a".into(),
        s.url(&page.path),
    ];
    for (_, a) in &page.via_css {
        args.push(s.url(a));
    }
    let o = std::process::Command::new("nghttp")
        .args(&args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

/// (context, asset) → (probability, support, in set) of every candidate of `page`.
fn candidates(
    db: &std::path::Path,
    page: &str,
) -> std::collections::BTreeMap<(String, String), (f64, u64, bool)> {
    let show = pushwise_json(db, &["sets", "show", page, "--json"]);
    let mut rows: Vec<serde_json::Value> = show[0]["assets"].as_array().unwrap().clone();
    for list in show[0]["by_context"].as_object().unwrap().values() {
        rows.extend(list.as_array().unwrap().iter().cloned());
    }
    rows.into_iter()
        .map(|r| {
            (
                (
                    r["context"].as_str().unwrap().to_string(),
                    r["path"].as_str().unwrap().to_string(),
                ),
                (
                    r["probability"].as_f64().unwrap(),
                    r["support"].as_u64().unwrap(),
                    r["in_set"] == true,
                ),
            )
        })
        .collect()
}

#[test]
fn two_servers_on_one_postgres_learn_together_run_one_pass_at_a_time_and_push_the_same_set() {
    let pg = PgCluster::start().unwrap();
    let url = pg.create_database("fleet").unwrap();
    let db = PathBuf::from(&url);
    let mut a = fleet_server(&url, &[]);
    let mut b = fleet_server(&url, &[]);
    // The example site is small: let 16 views of a page be enough for a set of its own.
    pushwise(&db, &["threshold", "set", "0.5", "--min-support", "5"]);
    let sitemap = SiteMap::scan(&site()).unwrap();
    let home = sitemap.pages.iter().find(|p| p.path == "/").unwrap();

    // Half the views of every page reach each server.
    let mut client = 0;
    for page in &sitemap.pages {
        for i in 0..16 {
            client += 1;
            browser_view(if i % 2 == 0 { &a } else { &b }, page, client);
        }
    }
    // One more client, on both servers, fetching a file nobody else does: the salt is the
    // fleet's, so it has one key on both.
    let ua = format!("user-agent: {BROWSER_UA} client/9999");
    for s in [&a, &b] {
        let out = nghttp(&["-H", &ua, &s.url("/fonts/OPEN-SANS-LICENSE.txt")]);
        assert!(out.contains(":status: 200"), "{out}");
    }
    // Both servers' recorders write into the one store: wait until every page view is there.
    let views = sitemap.pages.len() * 16;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let recorded = events(&db).iter().filter(|e| e.is_page).count();
        if recorded >= views {
            assert_eq!(recorded, views, "no event is recorded twice");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{recorded} of {views} views recorded"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let licence: Vec<i64> = loop {
        let keys: Vec<i64> = events(&db)
            .iter()
            .filter(|e| e.path == "/fonts/OPEN-SANS-LICENSE.txt")
            .map(|e| e.client)
            .collect();
        if keys.len() >= 2 || Instant::now() > deadline {
            break keys;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(licence.len(), 2, "{licence:?}");
    assert_eq!(
        licence[0], licence[1],
        "one client, one key on both servers"
    );
    assert_eq!(
        events(&db)
            .iter()
            .filter(|e| e.client == licence[0])
            .count(),
        2,
        "and a key no other client has"
    );

    // While another process holds the fleet's analyzer lock (a pass in progress elsewhere), a
    // pass skips and says so.
    let db2 = db.clone();
    with_store(&db, |s| async move {
        let held = s.try_analyzer_lock().await.unwrap().expect("lock free");
        let out = pushwise_json(&db2, &["analyze", "--once", "--json"]);
        assert_eq!(out["skipped"], true, "{out}");
        held.release().await;
    });

    // Two passes started together: one runs, the other skips, or (if the first was already done)
    // the second finds nothing new. Either way nothing is counted twice: the counts equal a
    // rebuild's.
    let spawn = || {
        std::process::Command::new(bin())
            .arg("--db")
            .arg(&db)
            .args(["analyze", "--once", "--json"])
            .output()
            .unwrap()
    };
    let (x, y) = std::thread::scope(|t| {
        let x = t.spawn(spawn);
        let y = t.spawn(spawn);
        (x.join().unwrap(), y.join().unwrap())
    });
    let outs: Vec<serde_json::Value> = [x, y]
        .iter()
        .map(|o| {
            assert!(o.status.success(), "{}", text(o));
            serde_json::from_slice(&o.stdout).unwrap()
        })
        .collect();
    let ran: Vec<&serde_json::Value> = outs.iter().filter(|o| o["skipped"] != true).collect();
    assert!(!ran.is_empty(), "{outs:?}");
    let incremental = candidates(&db, "/");
    assert!(
        incremental.values().any(|c| c.2),
        "the home page has a set: {outs:?}"
    );

    // Both servers load the new generation from the notice (their poll is 10 minutes away) and
    // promise the same assets for the home page.
    let promised = |s: &Server| promised_paths(&nghttp(&[&s.url("/")]));
    let deadline = Instant::now() + Duration::from_secs(15);
    let (pa, pb) = loop {
        let (pa, pb) = (promised(&a), promised(&b));
        if !pa.is_empty() && !pb.is_empty() {
            break (pa, pb);
        }
        assert!(
            Instant::now() < deadline,
            "no push after the pass: a {pa:?}, b {pb:?}\n{}\n{}",
            a.stderr(),
            b.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(pa, pb);
    for asset in home.all_assets() {
        assert!(pa.contains(&asset), "{asset} not promised: {pa:?}");
    }

    assert_eq!(a.stop(), 0);
    assert_eq!(b.stop(), 0);
    pushwise(&db, &["analyze", "--rebuild"]);
    let rebuilt = candidates(&db, "/");
    assert_eq!(
        incremental.keys().collect::<Vec<_>>(),
        rebuilt.keys().collect::<Vec<_>>()
    );
    for (k, (p, n, in_set)) in &incremental {
        let (q, m, in_set2) = rebuilt[k];
        assert_eq!(*n, m, "support of {k:?}: counted twice?");
        // The pass ran with sessions still open and the rebuild later, after they closed: the
        // decayed weights then differ in their last digits, never by a double count.
        assert!((p - q).abs() <= 1e-6, "{k:?}: {p} vs {q}");
        assert_eq!(*in_set, in_set2, "{k:?}");
    }
}

/// The value of metric line `name` (with its trailing space) in a scrape of `s`, or 0.
fn metric(s: &Server, name: &str) -> f64 {
    metric_value(&s.metrics(), name)
}

#[test]
fn postgres_going_down_under_load_fails_no_request_counts_the_drops_and_recording_resumes() {
    let pg = PgCluster::start().unwrap();
    let url = pg.create_database("outage").unwrap();
    let db = PathBuf::from(&url);
    // A small queue, so that a few seconds without the database overflow it.
    let extra = [
        "--metrics-listen",
        "127.0.0.1:0",
        "--keep-query",
        "--queue-size",
        "40",
        "--batch-size",
        "10",
        "--batch-interval-ms",
        "50",
    ];
    let mut a = fleet_server(&url, &extra);
    let mut b = fleet_server(&url, &extra);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let sent = std::sync::atomic::AtomicUsize::new(0);
    let recorded_requests = || -> Vec<usize> {
        events(&db)
            .iter()
            .filter_map(|e| e.path.strip_prefix("/about.html?r=")?.parse().ok())
            .collect()
    };
    let statuses = std::thread::scope(|t| {
        // The load: one request after another, alternating servers, each with its own number.
        let load = t.spawn(|| {
            let mut statuses = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let s = if i % 2 == 0 { &a } else { &b };
                statuses.push(http_status(&s.url(&format!("/about.html?r={i}")), &[]));
                sent.store(i, std::sync::atomic::Ordering::Relaxed);
            }
            statuses
        });
        // Whatever happens below (a failed assertion too), the load stops, or the scope would
        // wait for it forever.
        struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let _stop_load = StopOnDrop(&stop);
        let wait_for = |what: &str, done: &dyn Fn() -> bool| {
            let deadline = Instant::now() + Duration::from_secs(40);
            while !done() {
                assert!(Instant::now() < deadline, "timed out waiting for {what}");
                std::thread::sleep(Duration::from_millis(100));
            }
        };
        wait_for("recording to start", &|| recorded_requests().len() >= 20);
        pg.stop().unwrap();
        let dropped = "pushwise_recorder_events_dropped_total ";
        let failed = "pushwise_recorder_failed_batches_total ";
        wait_for(
            "both servers to count failed batches and dropped events",
            &|| {
                [&a, &b]
                    .iter()
                    .all(|s| metric(s, dropped) > 0.0 && metric(s, failed) > 0.0)
            },
        );
        pg.restart().unwrap();
        let back = sent.load(std::sync::atomic::Ordering::Relaxed);
        wait_for("recording to resume on both servers", &|| {
            let after: Vec<usize> = recorded_requests()
                .into_iter()
                .filter(|r| *r > back)
                .collect();
            after.iter().any(|r| r % 2 == 0) && after.iter().any(|r| r % 2 == 1)
        });
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        load.join().unwrap()
    });
    assert!(statuses.len() > 40, "{} requests", statuses.len());
    let failed: Vec<(usize, &String)> = statuses
        .iter()
        .enumerate()
        .filter(|(_, s)| *s != "200")
        .collect();
    assert!(failed.is_empty(), "requests failed: {failed:?}");
    assert_eq!(a.stop(), 0);
    assert_eq!(b.stop(), 0);
    let mut recorded = recorded_requests();
    let n = recorded.len();
    recorded.sort_unstable();
    recorded.dedup();
    assert_eq!(recorded.len(), n, "an event was recorded twice");
    assert!(
        n < statuses.len(),
        "the outage lost some events ({n} of {})",
        statuses.len()
    );
}

#[test]
fn operator_commands_work_against_postgres_unchanged_and_never_print_its_password() {
    let pg = PgCluster::start().unwrap();
    pg.psql("CREATE ROLE op LOGIN PASSWORD 'hunter2'").unwrap();
    pg.psql("CREATE DATABASE ops OWNER op").unwrap();
    let url = format!("postgres://op:hunter2@127.0.0.1:{}/ops", pg.port());
    let db = PathBuf::from(&url);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let mut lines = browser_views_log("/", &["/css/site.css", "/js/app.js"], 60);
    lines.push_str(&browser_views_log("/about.html", &["/css/site.css"], 30));
    std::fs::write(&log, lines).unwrap();

    let import = pushwise_json(&db, &["import", "--json", log.to_str().unwrap()]);
    assert_eq!(import[0]["imported"], 60 * 3 + 30 * 2, "{import}");
    // Imported again: nothing new.
    let again = pushwise_json(&db, &["import", "--json", log.to_str().unwrap()]);
    assert_eq!(again[0]["imported"], 0, "{again}");
    assert_eq!(again[0]["duplicates"], 240, "{again}");
    pushwise(&db, &["threshold", "set", "0.5", "--min-support", "5"]);
    let pass = pushwise_json(&db, &["analyze", "--once", "--json"]);
    assert_eq!(pass["events"], 240, "{pass}");
    let list = pushwise_json(&db, &["sets", "list", "--json"]);
    let home = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["page"] == "/")
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(home["set_size"], 2, "{home}");
    let plan = pushwise_json(
        &db,
        &["plan", "--page", "/", "--user-agent", BROWSER_UA, "--json"],
    );
    assert!(plan.to_string().contains("/css/site.css"), "{plan}");
    let threshold = pushwise(&db, &["threshold", "show"]);
    assert!(threshold.contains("0.5"), "{threshold}");
    let tune = pushwise_json(&db, &["tune", "--json"]);
    assert!(tune["recommended"]["f1"].as_f64().is_some(), "{tune}");

    // What is not possible on PostgreSQL says what to use instead; nothing shows the password.
    let backup = pushwise_fails(&db, &["backup", dir.path().join("b.db").to_str().unwrap()]);
    assert!(backup.contains("pg_dump"), "{backup}");
    // Nothing listens on port 1: the connection is refused, and the message names the store.
    let wrong = PathBuf::from("postgres://op:wrongpass@127.0.0.1:1/ops");
    let refused = pushwise_fails(&wrong, &["sets", "list"]);
    assert!(refused.contains("op:***@"), "{refused}");
    for out in [&backup, &refused, &threshold] {
        assert!(
            !out.contains("hunter2") && !out.contains("wrongpass"),
            "{out}"
        );
    }
    let bad = pushwise_fails(
        Path::new("postgres://op:hunter2@h/db?pool_max=0"),
        &["sets", "list"],
    );
    assert!(
        bad.contains("pool_max=0") && !bad.contains("hunter2"),
        "{bad}"
    );
}

#[test]
fn the_fleet_store_connection_can_require_a_verified_tls_server() {
    let tls = pushwise_server::tls::generate_self_signed().unwrap();
    let pg = PgCluster::start_tls(&tls.cert_pem, &tls.key_pem).unwrap();
    // The server refuses TCP without TLS (pg_hba: hostnossl ... reject); psql prefers TLS.
    let url = pg.create_database("tls").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &tls.cert_pem).unwrap();
    let verified = PathBuf::from(format!(
        "{url}?sslmode=verify-full&sslrootcert={}",
        ca.display()
    ));
    pushwise(&verified, &["threshold", "set", "0.4"]);
    assert!(pushwise(&verified, &["threshold", "show"]).contains("0.4"));
    // Without TLS the server says no; with a CA that did not sign its certificate, pushwise does.
    let plain = PathBuf::from(format!("{url}?sslmode=disable"));
    let refused = pushwise_fails(&plain, &["threshold", "show"]);
    assert!(
        refused.contains("no encryption") || refused.contains("pg_hba"),
        "{refused}"
    );
    let other = pushwise_server::tls::generate_self_signed().unwrap();
    let wrong_ca = dir.path().join("other.pem");
    std::fs::write(&wrong_ca, &other.cert_pem).unwrap();
    let unverified = PathBuf::from(format!(
        "{url}?sslmode=verify-full&sslrootcert={}",
        wrong_ca.display()
    ));
    let refused = pushwise_fails(&unverified, &["threshold", "show"]);
    assert!(refused.to_lowercase().contains("certificate"), "{refused}");
}

#[test]
fn sigterm_while_postgres_is_down_exits_promptly_and_counts_what_it_could_not_write() {
    let pg = PgCluster::start().unwrap();
    let url = pg.create_database("down").unwrap();
    let mut s = fleet_server(&url, &["--batch-interval-ms", "50"]);
    assert_eq!(http_status(&s.url("/"), &[]), "200");
    pg.stop().unwrap();
    for p in ["/about.html", "/css/site.css", "/products.html"] {
        assert_eq!(http_status(&s.url(p), &[]), "200", "{p}");
    }
    // Each attempt gives up after the pool's 2 s connect timeout; the recorder tries four times.
    let started = Instant::now();
    assert_eq!(s.stop(), 0);
    let took = started.elapsed();
    eprintln!("shutdown with PostgreSQL down took {took:?}");
    assert!(took < Duration::from_secs(15), "shutdown took {took:?}");
    assert!(
        s.stderr().contains("giving up on the database at shutdown"),
        "the unwritten events are counted as lost: {}",
        s.stderr()
    );
}
