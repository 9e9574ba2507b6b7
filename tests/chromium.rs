//! End-to-end with a real browser: headless Chromium (which refuses push) uses pushwise's 103 Early
//! Hints — it requests the hinted assets while the application is still thinking about the page.

mod common;

use std::time::Duration;

use common::*;

const THINK: Duration = Duration::from_millis(1500);

#[test]
fn headless_chromium_fetches_hinted_assets_before_the_page_arrives() {
    // examples/site behind an application that takes THINK to produce each HTML page.
    let app = pushwise_bench::browser::SlowSite::start(site(), THINK).unwrap();
    let port = app.port;
    let (dir, db) = temp_db();
    let set = [
        "/css/site.css",
        "/js/app.js",
        "/img/logo.svg",
        "/img/home-hero.png",
    ];
    prepare_sets(&db, &[("/", &set)]);
    let profile = dir.path().join("profile");
    let up = format!("http://127.0.0.1:{port}");
    let mut s = Server::start_with_db(
        &[
            "--upstream",
            &up,
            "--holdout",
            "0",
            "--analyze-every",
            "0",
            "--batch-interval-ms",
            "20",
        ],
        dir,
        db,
    );
    let o = std::process::Command::new("timeout")
        .args([
            "60",
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
        ])
        .args([
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--ignore-certificate-errors",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--virtual-time-budget=5000", "--dump-dom"])
        .arg(format!("https://localhost:{}/", s.port))
        .output()
        .expect("chromium (installed by .ci/run)");
    let dom = String::from_utf8_lossy(&o.stdout);
    assert!(
        dom.contains("Example Co."),
        "Chromium did not render the page: {}",
        text(&o)
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.stop(), 0);
    let ev = events(&s.db);
    let page = ev
        .iter()
        .find(|e| e.path == "/" && e.is_page)
        .expect("page view recorded");
    assert!(page.browser, "HeadlessChrome counts as a browser");
    let hinted: Vec<&str> = ev
        .iter()
        .filter(|e| e.push == 4)
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(
        hinted, set,
        "pushwise hinted the set (Chromium refuses push)"
    );
    for a in set {
        let first = ev
            .iter()
            .filter(|e| e.path == a && e.push == 0 && e.status == 200)
            .map(|e| e.ts_ms)
            .min()
            .unwrap_or_else(|| panic!("Chromium never requested {a}"));
        let after = first - page.ts_ms;
        assert!(
            after < THINK.as_millis() as i64,
            "{a} requested {after} ms after the page request: not before the HTML arrived"
        );
    }
}

#[test]
fn learned_early_hints_load_a_page_whose_assets_css_discovers_faster_than_no_hints() {
    use pushwise_bench::browser::{SlowSite, TestCert, load, median_p90};
    use pushwise_bench::proxy::DelayProxy;
    use pushwise_bench::site::SiteMap;

    // "/" links site.css, which discovers a font and two background images: without hints the
    // browser learns of them only two round trips after the HTML arrives.
    let map = SiteMap::scan(&site()).unwrap();
    let home = map.page("/").unwrap();
    let via_css: Vec<&str> = home.via_css.iter().map(|(_, a)| a.as_str()).collect();
    assert!(
        via_css.contains(&"/fonts/open-sans-300.woff2"),
        "{via_css:?}"
    );

    // Learned through the real pipeline: an access log imported and analyzed.
    let (dir, db) = temp_db();
    let log = dir.path().join("access.log");
    let assets = home.all_assets();
    let assets: Vec<&str> = assets.iter().map(String::as_str).collect();
    std::fs::write(&log, browser_views_log("/", &assets, 40)).unwrap();
    pushwise(
        &db,
        &["import", "--host", "example.com", log.to_str().unwrap()],
    );
    pushwise(&db, &["analyze", "--once"]);
    let chromium_ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36";
    let plan = pushwise_json(
        &db,
        &["plan", "--page", "/", "--user-agent", chromium_ua, "--json"],
    );
    let planned: Vec<&str> = plan["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].as_str().unwrap())
        .collect();
    for a in &via_css {
        assert!(planned.contains(a), "{a} not learned for /: {plan}");
    }

    let app = SlowSite::start(site(), Duration::from_millis(200)).unwrap();
    let up = format!("http://127.0.0.1:{}", app.port);
    // A certificate Chromium trusts by its key: under --ignore-certificate-errors it would not
    // reuse what the hints preloaded (see `TestCert`).
    let cert = TestCert::generate().unwrap();
    let cert_dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = cert.write(cert_dir.path()).unwrap();
    let common = [
        "--upstream",
        &up,
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
        "--no-record",
        "--holdout",
        "0",
        "--analyze-every",
        "0",
    ];
    let none = Server::start_with_db(
        &[&common[..], &["--push-mode", "off"]].concat(),
        tempfile::tempdir().unwrap(),
        db.clone(),
    );
    let hints = Server::start_with_db(
        &[&common[..], &["--push-mode", "hints"]].concat(),
        tempfile::tempdir().unwrap(),
        db.clone(),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // 100 ms: the saving (about two round trips) then stands well clear of Chromium's own
    // load-to-load noise on a busy 2-core machine (bench/browser.sh measures at 50 ms).
    let rtt = Duration::from_millis(100);
    let (p_none, p_hints) = rt.block_on(async {
        (
            DelayProxy::start(([127, 0, 0, 1], none.port).into(), rtt)
                .await
                .unwrap(),
            DelayProxy::start(([127, 0, 0, 1], hints.port).into(), rtt)
                .await
                .unwrap(),
        )
    });
    let (mut t_none, mut t_hints) = (Vec::new(), Vec::new());
    for _ in 0..9 {
        for (port, out) in [
            (p_none.addr.port(), &mut t_none),
            (p_hints.addr.port(), &mut t_hints),
        ] {
            let url = format!("https://localhost:{port}/");
            let t = load("chromium", &app, &url, &cert, Duration::from_secs(30))
                .expect("Chromium loads the page (installed by .ci/run)");
            out.push(t.load_ms);
        }
    }
    let (m_none, _) = median_p90(&t_none);
    let (m_hints, _) = median_p90(&t_hints);
    eprintln!(
        "load event, median of 9 at 100 ms RTT: no hints {m_none:.0} ms, learned hints {m_hints:.0} ms ({t_none:?} vs {t_hints:?})"
    );
    assert!(
        m_hints < m_none,
        "learned hints {m_hints:.0} ms did not load faster than no hints {m_none:.0} ms"
    );
    drop((p_none, p_hints));
}
