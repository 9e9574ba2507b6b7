//! End-to-end with a real browser: headless Chromium (which refuses push) uses pushwise's 103 Early
//! Hints — it requests the hinted assets while the application is still thinking about the page.

mod common;

use std::time::Duration;

use common::*;

const THINK: Duration = Duration::from_millis(1500);

/// An HTTP/1.1 application serving examples/site that takes THINK to produce each HTML page.
fn start_slow_site() -> u16 {
    http1_app(|req| {
        let mut path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
        if path.ends_with('/') {
            path.push_str("index.html");
        }
        let ct = match path.rsplit('.').next().unwrap_or("") {
            "html" => "text/html; charset=utf-8",
            "css" => "text/css",
            "js" => "text/javascript",
            "svg" => "image/svg+xml",
            "png" => "image/png",
            "woff2" => "font/woff2",
            _ => "application/octet-stream",
        };
        if ct.starts_with("text/html") {
            std::thread::sleep(THINK);
        }
        let (status, body) = match std::fs::read(site().join(path.trim_start_matches('/'))) {
            Ok(b) if !path.contains("..") => ("200 OK", b),
            _ => ("404 Not Found", b"not found".to_vec()),
        };
        let mut out = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nCache-Control: public, max-age=600\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(&body);
        out
    })
}

#[test]
fn headless_chromium_fetches_hinted_assets_before_the_page_arrives() {
    let port = start_slow_site();
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

/// A combined-format log of `views` browser views of `page` entering the site, each fetching
/// `assets` a moment later with the page as Referer, from distinct clients.
fn browser_views_log(page: &str, assets: &[String], views: usize) -> String {
    let mut log = String::new();
    for i in 0..views {
        let ts = |s: usize| {
            format!(
                "[10/Oct/2026:10:{:02}:{:02} +0000]",
                i / 20,
                (i % 20) * 3 + s
            )
        };
        let ip = format!("10.1.{}.{}", i / 200, i % 200 + 1);
        log.push_str(&format!(
            "{ip} - - {} \"GET {page} HTTP/1.1\" 200 2326 \"-\" \"{BROWSER_UA}\"\n",
            ts(0)
        ));
        for a in assets {
            log.push_str(&format!(
                "{ip} - - {} \"GET {a} HTTP/1.1\" 200 1000 \"https://example.com{page}\" \"{BROWSER_UA}\"\n",
                ts(1)
            ));
        }
    }
    log
}

#[test]
fn learned_early_hints_load_a_page_whose_assets_css_discovers_faster_than_no_hints() {
    use pushwise_bench::browser::{SlowSite, load, median_p90};
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
    std::fs::write(&log, browser_views_log("/", &home.all_assets(), 40)).unwrap();
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
    let common = [
        "--upstream",
        &up,
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
            let t = load("chromium", &app, &url, Duration::from_secs(30))
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
