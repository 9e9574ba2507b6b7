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
