//! End-to-end: the TLS HTTP/2 static server and the upstream proxy, with nghttp and curl.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;

use common::*;

#[test]
fn h2_is_negotiated_and_a_page_is_served_with_its_content_type() {
    let mut s = Server::start(&["--root", site().to_str().unwrap(), "--no-record"]);
    let out = nghttp(&[&s.url("/")]);
    assert!(out.contains("The negotiated protocol: h2"), "{out}");
    assert!(out.contains(":status: 200"), "{out}");
    assert!(
        out.contains("content-type: text/html; charset=utf-8"),
        "{out}"
    );
    let body = run("nghttp", &[&s.url("/css/site.css")]);
    let want = std::fs::read(site().join("css/site.css")).unwrap();
    assert_eq!(body.stdout, want);
    assert_eq!(s.stop(), 0);
}

#[test]
fn matching_if_none_match_gets_304_and_if_modified_since_too() {
    let s = Server::start(&["--root", site().to_str().unwrap(), "--no-record"]);
    let out = nghttp(&[&s.url("/js/app.js")]);
    let etag = header(&out, "etag").expect("etag").to_string();
    let lm = header(&out, "last-modified")
        .expect("last-modified")
        .to_string();
    let out = nghttp(&[
        "-H",
        &format!("if-none-match: {etag}"),
        &s.url("/js/app.js"),
    ]);
    assert!(out.contains(":status: 304"), "{out}");
    let out = nghttp(&["-H", "if-none-match: \"other\"", &s.url("/js/app.js")]);
    assert!(out.contains(":status: 200"), "{out}");
    let out = nghttp(&[
        "-H",
        &format!("if-modified-since: {lm}"),
        &s.url("/js/app.js"),
    ]);
    assert!(out.contains(":status: 304"), "{out}");
}

#[test]
fn a_single_range_gets_206_with_exactly_those_bytes() {
    let s = Server::start(&["--root", site().to_str().unwrap(), "--no-record"]);
    let o = run(
        "nghttp",
        &["-H", "range: bytes=10-19", &s.url("/js/app.js")],
    );
    let full = std::fs::read(site().join("js/app.js")).unwrap();
    assert_eq!(o.stdout, &full[10..20]);
    let out = nghttp(&["-H", "range: bytes=10-19", &s.url("/js/app.js")]);
    assert!(out.contains(":status: 206"), "{out}");
    assert!(
        out.contains(&format!("content-range: bytes 10-19/{}", full.len())),
        "{out}"
    );
    let out = nghttp(&["-H", "range: bytes=999999-", &s.url("/js/app.js")]);
    assert!(out.contains(":status: 416"), "{out}");
}

#[test]
fn traversal_attempts_are_refused_or_stay_inside_the_root() {
    let root = site().join("blog");
    let s = Server::start(&["--root", root.to_str().unwrap(), "--no-record"]);
    let inside = std::fs::read_to_string(root.join("index.html")).unwrap();
    let outside = std::fs::read_to_string(site().join("index.html")).unwrap();
    assert_ne!(inside, outside);
    // Encoded slashes keep `..` inside one segment, which the file origin refuses.
    for path in ["/%2E%2E%2Fcss%2Fsite.css", "/a/%00", "/..%2fabout.html"] {
        let out = nghttp(&[&s.url(path)]);
        assert!(
            out.contains(":status: 400") || out.contains(":status: 404"),
            "{path}: {out}"
        );
    }
    // Dot segments are removed before anything is served (RFC 3986 §5.2.4): `..` above the root
    // stays at the root, so these are the root's own index, never the file outside it.
    for (path, proto) in [
        ("/%2e%2e/index.html", "--http2"),
        ("/../index.html", "--http1.1"),
        ("/a/../../index.html", "--http2"),
    ] {
        let o = run("curl", &["-sk", proto, "--path-as-is", &s.url(path)]);
        let body = String::from_utf8_lossy(&o.stdout);
        assert_eq!(body, inside, "{path} over {proto}");
    }
}

#[test]
fn symlinks_out_of_the_root_are_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ok.txt"), "inside").unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        dir.path().join("link.txt"),
    )
    .unwrap();
    let s = Server::start(&["--root", dir.path().to_str().unwrap(), "--no-record"]);
    assert!(nghttp(&[&s.url("/ok.txt")]).contains(":status: 200"));
    let out = nghttp(&[&s.url("/link.txt")]);
    assert!(out.contains(":status: 404"), "{out}");
}

#[test]
fn head_has_headers_but_no_body() {
    let s = Server::start(&["--root", site().to_str().unwrap(), "--no-record"]);
    let o = run("curl", &["-sk", "--http2", "-I", &s.url("/js/app.js")]);
    let t = text(&o);
    assert!(t.starts_with("HTTP/2 200"), "{t}");
    let len = std::fs::metadata(site().join("js/app.js")).unwrap().len();
    assert!(t.contains(&format!("content-length: {len}")), "{t}");
    let o = run(
        "curl",
        &[
            "-sk",
            "--http2",
            "-X",
            "HEAD",
            "-o",
            "-",
            "-w",
            "%{size_download}",
            &s.url("/js/app.js"),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "0");
}

#[test]
fn other_methods_get_405_and_unknown_paths_404() {
    let s = Server::start(&["--root", site().to_str().unwrap(), "--no-record"]);
    assert_eq!(http_status(&s.url("/"), &["-X", "DELETE"]), "405");
    assert!(nghttp(&[&s.url("/nope.html")]).contains(":status: 404"));
}

#[test]
fn http1_clients_are_served_via_alpn() {
    let s = Server::start(&["--root", site().to_str().unwrap(), "--no-record"]);
    let o = run(
        "curl",
        &[
            "-sk",
            "--http1.1",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code} %{content_type}",
            &s.url("/about.html"),
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "1.1 200 text/html; charset=utf-8"
    );
    let o = run("curl", &["-sk", "--http1.1", &s.url("/css/blog.css")]);
    assert_eq!(
        o.stdout,
        std::fs::read(site().join("css/blog.css")).unwrap()
    );
}

#[test]
fn nghttp_fetches_a_page_and_all_its_linked_assets() {
    let s = Server::start(&["--root", site().to_str().unwrap(), "--no-record"]);
    let o = run("nghttp", &["-ans", &s.url("/")]);
    let t = text(&o);
    for a in [
        "/css/site.css",
        "/js/app.js",
        "/img/logo.svg",
        "/img/home-hero.png",
    ] {
        assert!(
            t.lines()
                .any(|l| l.contains(" 200 ") && l.trim_end().ends_with(a)),
            "{a}: {t}"
        );
    }
}

#[test]
fn connections_are_served_whatever_the_number_of_workers_and_with_none() {
    for workers in ["0", "1", "3"] {
        let mut s = Server::start(&[
            "--root",
            site().to_str().unwrap(),
            "--no-record",
            "--workers",
            workers,
        ]);
        // Twelve connections at once, four streams each: spread over the workers in turn.
        let o = run(
            "h2load",
            &["-n", "480", "-c", "12", "-m", "4", &s.url("/css/site.css")],
        );
        let t = text(&o);
        assert!(
            t.contains("480 succeeded") && t.contains("status codes: 480 2xx"),
            "--workers {workers}: {t}"
        );
        assert_eq!(
            http_status(&s.url("/"), &["--http1.1"]),
            "200",
            "--workers {workers}"
        );
        assert_eq!(s.stop(), 0, "--workers {workers}");
    }
}

#[test]
fn more_workers_than_the_limit_are_refused_before_serving() {
    let o = run(
        bin(),
        &[
            "serve",
            "--root",
            site().to_str().unwrap(),
            "--workers",
            "1025",
        ],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--workers") && err.contains("1024"), "{err}");
}

/// A tiny HTTP/1.1 application on a thread: echoes the request line and some headers.
fn start_app() -> (u16, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        for _ in 0..3 {
            let Ok((mut c, _)) = l.accept() else { return };
            let Some(req) = read_request_head(&mut c) else {
                continue;
            };
            let first = req.lines().next().unwrap_or("").to_string();
            let lower = req.to_ascii_lowercase();
            let body = format!(
                "<html>app saw: {first}; host={}; xff={}; te-forwarded={}</html>",
                lower
                    .lines()
                    .find_map(|l| l.strip_prefix("host: "))
                    .unwrap_or("-"),
                lower
                    .lines()
                    .find_map(|l| l.strip_prefix("x-forwarded-for: "))
                    .unwrap_or("-"),
                lower.contains("x-hop: "),
            );
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close, x-private\r\nX-Private: hop\r\nX-App: yes\r\n\r\n{body}",
                body.len()
            );
            c.write_all(resp.as_bytes()).unwrap();
        }
    });
    (port, h)
}

#[test]
fn upstream_mode_forwards_to_an_http1_app_and_strips_hop_by_hop_headers() {
    let (port, _app) = start_app();
    let s = Server::start(&[
        "--upstream",
        &format!("http://127.0.0.1:{port}"),
        "--no-record",
    ]);
    let o = run("nghttp", &["-v", &s.url("/shop/cart?id=7")]);
    let t = text(&o);
    assert!(t.contains(":status: 200"), "{t}");
    assert!(t.contains("app saw: GET /shop/cart?id=7 HTTP/1.1"), "{t}");
    assert!(t.contains(&format!("host=127.0.0.1:{}", s.port)), "{t}");
    assert!(t.contains("xff=127.0.0.1"), "{t}");
    assert!(t.contains("x-app: yes"), "{t}");
    assert!(
        !t.contains("x-private"),
        "hop-by-hop header named by Connection leaked: {t}"
    );
    // Over HTTP/1.1 the client can send hop-by-hop headers; they must not reach the app.
    let o = run(
        "curl",
        &[
            "-sk",
            "--http1.1",
            "-H",
            "Connection: x-hop",
            "-H",
            "X-Hop: 1",
            &s.url("/h1"),
        ],
    );
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(t.contains("app saw: GET /h1 HTTP/1.1"), "{t}");
    assert!(t.contains("te-forwarded=false"), "{t}");
}

#[test]
fn upstream_down_gives_502_not_a_hang() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let s = Server::start(&[
        "--upstream",
        &format!("http://127.0.0.1:{port}"),
        "--no-record",
    ]);
    assert!(nghttp(&[&s.url("/")]).contains(":status: 502"));
}

#[test]
fn bad_flags_and_unwritable_databases_give_clear_errors() {
    let o = std::process::Command::new(bin())
        .args([
            "--db",
            "/proc/pushwise/none.db",
            "serve",
            "--root",
            site().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o).contains("cannot create the database /proc/pushwise/none.db"),
        "{}",
        text(&o)
    );
    let o = std::process::Command::new(bin())
        .args([
            "serve",
            "--root",
            "/definitely/not/here",
            "--listen",
            "127.0.0.1:0",
            "--no-record",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o).contains("--root /definitely/not/here"),
        "{}",
        text(&o)
    );
}

#[test]
fn garbage_and_plain_http_on_the_tls_port_are_refused_and_serving_goes_on() {
    let s = Server::start(&["--root", site().to_str().unwrap(), "--no-record"]);
    for junk in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0x16, 0x03, 0x01, 0xff, 0xff, 0, 0, 0][..],
        &[0u8; 4096][..],
    ] {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        c.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let _ = c.write_all(junk);
        let mut buf = [0u8; 64];
        let _ = c.read(&mut buf); // closed or alert; either way, no hang and no crash
    }
    // An h2 client that sends a malformed request: the stream fails, the server stays up.
    let o = run(
        "curl",
        &[
            "-sk",
            "--http2",
            "-H",
            "content-length: abc",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &s.url("/"),
        ],
    );
    let _ = o;
    assert!(nghttp(&[&s.url("/")]).contains(":status: 200"));
}

#[test]
fn responses_carry_a_date_over_both_protocols() {
    let s = serve_site(&["--no-record"]);
    let h2 = nghttp(&[&s.url("/"), &s.url("/nope.html")]);
    let dates: Vec<&str> = h2
        .lines()
        .filter_map(|l| {
            l.split_once("recv (stream_id=13) date: ")
                .map(|(_, d)| d.trim())
        })
        .collect();
    assert_eq!(dates.len(), 1, "{h2}");
    assert!(
        h2.lines().any(|l| l.contains("recv (stream_id=15) date: ")),
        "a 404 carries one too: {h2}"
    );
    let o = run(
        "curl",
        &[
            "-sk",
            "--http1.1",
            "-D",
            "-",
            "-o",
            "/dev/null",
            &s.url("/"),
        ],
    );
    let h1 = String::from_utf8_lossy(&o.stdout).to_ascii_lowercase();
    assert!(h1.contains("\ndate: "), "{h1}");
    // An IMF-fixdate ("Fri, 04 Dec 2026 03:44:00 GMT") of about now.
    assert!(
        dates[0].ends_with(" GMT") && dates[0].len() == 29,
        "{}",
        dates[0]
    );
}
