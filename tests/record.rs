//! End-to-end: every response is recorded into SQLite off the request path, and nothing is lost
//! on SIGTERM or while the database refuses writes.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_page_and_its_assets_are_recorded_with_referers_and_statuses() {
    let mut s = Server::start(&["--root", site().to_str().unwrap(), "--analyze-every", "0"]);
    let page = s.url("/blog/post-1.html");
    let o = run(
        "nghttp",
        &[
            "-an",
            "-H",
            &format!("referer: {page}"),
            "-H",
            &format!("user-agent: {BROWSER_UA}"),
            &page,
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = run(
        "nghttp",
        &[
            "-n",
            "-H",
            "referer: https://www.google.com/search?q=x",
            &s.url("/about.html?utm=1"),
        ],
    );
    assert!(o.status.success());
    assert!(nghttp(&[&s.url("/missing.png")]).contains(":status: 404"));
    assert_eq!(s.stop(), 0);
    let ev = events(&s.db);
    let find = |p: &str| {
        ev.iter()
            .find(|e| e.path == p)
            .unwrap_or_else(|| panic!("no event for {p}: {ev:?}"))
    };
    let page_ev = find("/blog/post-1.html");
    assert!(page_ev.is_page && page_ev.status == 200 && page_ev.browser);
    for a in [
        "/css/site.css",
        "/css/blog.css",
        "/js/app.js",
        "/img/logo.svg",
        "/img/post-1.png",
    ] {
        let e = find(a);
        assert_eq!(e.status, 200, "{a}");
        assert!(!e.is_page, "{a}");
        assert_eq!(e.referer.as_deref(), Some("/blog/post-1.html"), "{a}");
        assert_eq!(e.conn_id, page_ev.conn_id, "{a}");
        assert_eq!(e.client, page_ev.client, "{a}");
        assert!(e.bytes > 0);
    }
    // Query strings are dropped; an external referer is only marked, never stored.
    let about = find("/about.html");
    assert!(about.referer_external && about.referer.is_none() && !about.browser);
    // Error responses are recorded under one path (their paths are chosen by the client).
    assert_eq!(find(pushwise_store::event::ERROR_PATH).status, 404);
    assert_eq!(ev.len(), 8, "{ev:?}");
}

#[test]
fn the_client_key_is_a_salted_hash_and_no_raw_ip_is_stored() {
    let mut s = Server::start(&["--root", site().to_str().unwrap(), "--analyze-every", "0"]);
    nghttp(&[&s.url("/")]);
    assert_eq!(s.stop(), 0);
    let bytes = std::fs::read(&s.db).unwrap();
    let wal = std::fs::read(s.db.with_extension("db-wal")).unwrap_or_default();
    for hay in [&bytes, &wal] {
        assert!(
            !hay.windows(9).any(|w| w == b"127.0.0.1"),
            "raw IP found in the database"
        );
    }
}

fn h2load_counts(out: &str) -> (u64, u64) {
    // "requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored, 0 timeout"
    let line = out
        .lines()
        .find(|l| l.starts_with("requests:"))
        .unwrap_or_else(|| panic!("{out}"));
    let num = |word: &str| -> u64 {
        line.split(',')
            .find(|p| p.trim().ends_with(word))
            .and_then(|p| p.split_whitespace().rev().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{line}"))
    };
    (num("done"), num("succeeded"))
}

#[test]
fn sigterm_during_load_leaves_exactly_as_many_rows_as_responses_sent() {
    let mut s = serve_site(&["--shutdown-grace", "15"]);
    let load = Command::new("h2load")
        .args([
            "-n",
            "400000",
            "-c",
            "4",
            "-m",
            "8",
            &s.url("/css/blog.css"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("h2load (nghttp2-client)");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(s.stop(), 0, "{}", s.stderr());
    let out = load.wait_with_output().unwrap();
    let (done, succeeded) = h2load_counts(&text(&out));
    assert!(
        succeeded > 100,
        "load too small to mean anything: {}",
        text(&out)
    );
    assert!(done < 400_000, "SIGTERM came after the load finished");
    let rows = events(&s.db)
        .iter()
        .filter(|e| e.path == "/css/blog.css" && e.status == 200)
        .count() as u64;
    assert_eq!(
        rows,
        succeeded,
        "rows in SQLite vs responses h2load received\n{}",
        s.stderr()
    );
}

#[test]
fn a_locked_database_keeps_the_server_answering_and_loses_no_events() {
    let mut s = serve_site(&["--batch-interval-ms", "50"]);
    nghttp(&[&s.url("/")]);
    std::thread::sleep(Duration::from_millis(300));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Another process takes the write lock and holds it.
    let mut lock = rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", s.db.display()))
            .await
            .unwrap();
        sqlx::query("BEGIN EXCLUSIVE")
            .execute(&mut c)
            .await
            .unwrap();
        c
    });
    let started = Instant::now();
    for i in 0..20 {
        let out = nghttp(&[&s.url(&format!("/img/post-{}.png", 1 + i % 2))]);
        assert!(out.contains(":status: 200"), "{out}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "responses waited on the database"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        s.stderr().contains("cannot write to the database"),
        "{}",
        s.stderr()
    );
    rt.block_on(async {
        sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
        use sqlx::Connection;
        lock.close().await.unwrap();
    });
    assert_eq!(s.stop(), 0);
    let n = events(&s.db)
        .iter()
        .filter(|e| e.path.starts_with("/img/post-"))
        .count();
    assert_eq!(n, 20, "{}", s.stderr());
}

#[test]
fn no_record_writes_no_events() {
    let mut s = serve_site(&["--no-record"]);
    nghttp(&[&s.url("/")]);
    assert_eq!(s.stop(), 0);
    assert!(events(&s.db).is_empty());
}

/// Clears the immutable attribute even when the test fails, so the temp dir can be removed.
struct Immutable(std::path::PathBuf);

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
fn a_database_that_stops_taking_writes_keeps_the_server_answering_and_loses_no_event() {
    // Tests run as root, where file modes do not stop writes: the immutable attribute does. The
    // write-ahead log is where SQLite writes while serving, so that is the file made unwritable.
    let mut s = serve_site(&["--batch-interval-ms", "20"]);
    assert!(nghttp(&[&s.url("/")]).contains(":status: 200"));
    std::thread::sleep(Duration::from_millis(300));
    let mut wal = s.db.as_os_str().to_owned();
    wal.push("-wal");
    let wal = std::path::PathBuf::from(wal);
    assert!(wal.exists(), "the server writes through a -wal file");
    let st = Command::new("chattr")
        .arg("+i")
        .arg(&wal)
        .status()
        .expect("chattr (e2fsprogs)");
    assert!(
        st.success(),
        "chattr +i failed: the test needs a file system with the immutable attribute"
    );
    let guard = Immutable(wal.clone());
    for p in ["/about.html", "/css/site.css", "/products.html"] {
        assert!(nghttp(&[&s.url(p)]).contains(":status: 200"), "{p}");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        s.stderr().contains("cannot write to the database"),
        "{}",
        s.stderr()
    );
    // Writable again: the kept events go in with the next retry.
    drop(guard);
    assert!(nghttp(&[&s.url("/blog/")]).contains(":status: 200"));
    let started = Instant::now();
    assert_eq!(s.stop(), 0);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown hung after the database refused writes"
    );
    let paths: Vec<String> = events(&s.db).into_iter().map(|e| e.path).collect();
    for p in [
        "/",
        "/about.html",
        "/css/site.css",
        "/products.html",
        "/blog/",
    ] {
        assert_eq!(
            paths.iter().filter(|x| *x == p).count(),
            1,
            "{p} recorded exactly once: {paths:?}"
        );
    }
}

#[test]
fn a_database_deleted_while_serving_keeps_the_server_answering_and_counts_what_is_lost() {
    let mut s = serve_site(&[
        "--batch-interval-ms",
        "20",
        "--metrics-listen",
        "127.0.0.1:0",
    ]);
    assert!(nghttp(&[&s.url("/")]).contains(":status: 200"));
    std::thread::sleep(Duration::from_millis(300));
    std::fs::remove_file(&s.db).unwrap();
    for p in ["/about.html", "/css/site.css", "/products.html"] {
        assert!(nghttp(&[&s.url(p)]).contains(":status: 200"), "{p}");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        s.stderr().contains("was deleted or replaced while in use"),
        "{}",
        s.stderr()
    );
    let metrics = s.metrics();
    assert!(
        metric_value(&metrics, "pushwise_recorder_failed_batches_total ") >= 1.0,
        "{metrics}"
    );
    // A file put back in its place is not written to (the old -wal is still held open).
    let started = Instant::now();
    assert_eq!(s.stop(), 0);
    assert!(started.elapsed() < Duration::from_secs(10), "shutdown hung");
    assert!(
        s.stderr().contains("giving up on the database at shutdown"),
        "the kept events are counted as lost: {}",
        s.stderr()
    );
    assert!(!s.db.exists(), "no empty database was created in its place");
}

#[test]
fn kill_9_loses_at_most_the_batch_in_flight_and_leaves_a_readable_database() {
    let mut s = serve_site(&["--batch-interval-ms", "50"]);
    for _ in 0..5 {
        assert!(nghttp(&[&s.url("/about.html")]).contains(":status: 200"));
    }
    // Well past the batch interval: everything served so far has been committed.
    std::thread::sleep(Duration::from_millis(600));
    s.child.kill().unwrap(); // SIGKILL: no drain
    s.child.wait().unwrap();
    let ev = events(&s.db);
    assert_eq!(
        ev.iter().filter(|e| e.path == "/about.html").count(),
        5,
        "{ev:?}"
    );
}

/// Fetches `path` as `user_agent` on a connection of its own, expecting 200.
fn fetch_as(server: &Server, user_agent: &str, path: &str) {
    let o = http_status(&server.url(path), &["-A", user_agent]);
    assert_eq!(o, "200");
}

#[test]
fn the_salt_rotates_on_schedule_without_splitting_a_visit_in_progress() {
    // Rotation 8 s after the salt was made; attribution window 2 s.
    let mut server = serve_site(&["--salt-rotate-days", "8s", "--window-secs", "2"]);
    fetch_as(&server, "quiet", "/about.html");
    // An active client: a request every 250 ms for 10 s, across the rotation.
    let active_until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < active_until {
        fetch_as(&server, "active", "/");
        std::thread::sleep(Duration::from_millis(250));
    }
    // A pause longer than the window, then both clients again.
    std::thread::sleep(Duration::from_secs(3));
    fetch_as(&server, "active", "/contact.html");
    fetch_as(&server, "quiet", "/products.html");
    assert_eq!(server.stop(), 0);
    let log = server.stderr();
    assert!(log.contains("rotated the client-key salt"), "{log}");

    let since: i64 = with_store(&server.db, |s| async move {
        s.setting("client_salt_since_ms").await.unwrap().unwrap()
    })
    .parse()
    .unwrap();
    let ev = events(&server.db);
    let key_of = |path: &str| -> Vec<(i64, i64)> {
        ev.iter()
            .filter(|e| e.path == path)
            .map(|e| (e.ts_ms, e.client))
            .collect()
    };
    let active = key_of("/");
    assert!(
        active.first().unwrap().0 < since && since < active.last().unwrap().0,
        "the rotation ({since}) fell inside the active client's visit"
    );
    let keys: std::collections::HashSet<i64> = active.iter().map(|a| a.1).collect();
    assert_eq!(
        keys.len(),
        1,
        "one key for the whole visit across the rotation: {active:?}"
    );
    let active_key = active[0].1;
    let after_pause = key_of("/contact.html")[0].1;
    assert_ne!(
        after_pause, active_key,
        "after a pause the active client has a new key"
    );
    let (quiet_before, quiet_after) = (key_of("/about.html")[0].1, key_of("/products.html")[0].1);
    assert_ne!(
        quiet_before, quiet_after,
        "a client quiet at the rotation gets a new key"
    );
    assert_ne!(quiet_before, active_key);
}
