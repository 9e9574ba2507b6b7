//! End-to-end attacks on the published limits (SECURITY.md): each test runs the real server on
//! loopback, tries to exceed one limit the way a hostile client would, and checks that the server
//! held it and still served a well-behaved client. Every test is bounded in time.

mod common;

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;

const MIB: u64 = 1024 * 1024;

/// An upstream that reads each request's body whole (by its Content-Length, or to its last
/// chunk) before answering
/// `200 ok`, after `delay`; counts connections open at once (`open`), at most (`peak`), and
/// those the proxy closed while a request waited for its answer (`cancelled`).
fn reading_upstream(
    delay: Duration,
) -> (u16, Arc<AtomicUsize>, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let counters = [(); 3].map(|_| Arc::new(AtomicUsize::new(0)));
    let [open, peak, cancelled] = counters.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let [o, p, x] = counters.clone();
            std::thread::spawn(move || {
                let now = o.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                if serve_reading(&mut c, delay) == Ended::Cancelled {
                    x.fetch_add(1, Ordering::SeqCst);
                }
                o.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (port, open, peak, cancelled)
}

#[derive(PartialEq)]
enum Ended {
    Closed,
    /// The proxy closed the connection while a request waited for its answer.
    Cancelled,
}

/// Serves requests on one keep-alive connection until it closes.
fn serve_reading(c: &mut std::net::TcpStream, delay: Duration) -> Ended {
    let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match c.read(&mut chunk) {
                Ok(0) | Err(_) => return Ended::Closed,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        // A chunked body (no Content-Length: the proxy streams it) ends with its last chunk; the
        // answer waits for it, so a body the proxy cuts never gets a 200 first.
        let chunked = head.contains("transfer-encoding: chunked");
        let body_end = |buf: &[u8]| -> Option<usize> {
            if !chunked {
                return (buf.len() >= head_end + len).then_some(head_end + len);
            }
            let body = &buf[head_end..];
            if body.starts_with(b"0\r\n\r\n") {
                return Some(head_end + 5);
            }
            body.windows(7)
                .position(|w| w == b"\r\n0\r\n\r\n")
                .map(|i| head_end + i + 7)
        };
        let end = loop {
            if let Some(end) = body_end(&buf) {
                break end;
            }
            match c.read(&mut chunk) {
                Ok(0) | Err(_) => return Ended::Closed,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        buf.drain(..end);
        // "Think" for `delay`, noticing if the proxy gives up on the request meanwhile.
        if !delay.is_zero() {
            let _ = c.set_read_timeout(Some(delay));
            let mut probe = [0u8; 1];
            if let Ok(0) = c.read(&mut probe) {
                return Ended::Cancelled;
            }
            let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
        }
        let body = "<!doctype html><link rel=stylesheet href=/app.css>ok";
        let ctype = if head.starts_with("get / ") {
            "text/html"
        } else {
            "text/plain"
        };
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\ncache-control: public, max-age=60\r\n\
             content-length: {}\r\n\r\n{body}",
            body.len()
        );
        if c.write_all(resp.as_bytes()).is_err() {
            return Ended::Closed;
        }
    }
}

/// Samples, every 20 ms until `stop`, how many TCP connections to `port` on loopback are
/// established from the connecting side (the kernel's view, /proc/net/tcp: a socket the proxy
/// has closed is no longer counted, however late the upstream notices), and returns the most.
fn sample_connections_to(
    port: u16,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let rem = format!(":{port:04X}");
        let mut most = 0;
        let mut before = std::collections::HashSet::new();
        while !stop.load(Ordering::SeqCst) {
            let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
            // The kernel writes the table in chunks while sockets come and go, so one read can
            // list a socket that closed beside the one that replaced it. A socket (local address
            // and inode) listed as established in two consecutive reads was established all
            // the time between them, so the sockets common to both were open at the same
            // moment: their number never counts more than were open at once.
            let now: std::collections::HashSet<(String, String)> = table
                .lines()
                .skip(1)
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (f.len() > 9 && f[2].ends_with(&rem) && f[3] == "01")
                        .then(|| (f[1].to_string(), f[9].to_string()))
                })
                .collect();
            most = most.max(now.intersection(&before).count());
            before = now;
            std::thread::sleep(Duration::from_millis(20));
        }
        most
    })
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn request(port: u16, method: &str, path: &str) -> http::Request<()> {
    http::Request::builder()
        .method(method)
        .uri(format!("https://localhost:{port}{path}"))
        .body(())
        .unwrap()
}

fn start_upstream_server(upstream: u16, tls: &TestTls, extra: &[&str]) -> Server {
    let up = format!("http://127.0.0.1:{upstream}");
    let mut args: Vec<String> = vec![
        "--upstream".into(),
        up,
        "--analyze-every".into(),
        "0".into(),
    ];
    args.extend(tls.args());
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start(&args)
}

#[test]
fn stalled_request_bodies_are_cut_at_the_body_timeout_and_pin_little_memory() {
    let (upstream, _, _, _) = reading_upstream(Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let tls = TestTls::new(dir.path());
    let server = start_upstream_server(
        upstream,
        &tls,
        &[
            "--request-body-timeout",
            "3",
            "--upstream-max-connections",
            "50",
        ],
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = sample_connections_to(upstream, Arc::clone(&stop));
    let pid = server.child.id();
    let before = rss_bytes(pid);
    let started = Instant::now();
    let (answered, peak_rss) = rt().block_on(async {
        // 20 connections × 50 streams, each declaring 8 MiB, sending 1 MiB and stalling.
        let mut streams = Vec::new();
        let mut conns = Vec::new();
        for _ in 0..20 {
            let (mut send, conn) = h2_connect(server.port, &tls, &h2::client::Builder::new()).await;
            for _ in 0..50 {
                send = send.ready().await.unwrap();
                let mut req = request(server.port, "POST", "/upload");
                req.headers_mut()
                    .insert("content-length", (8 * MIB).to_string().parse().unwrap());
                let (resp, mut body) = send.send_request(req, false).unwrap();
                body.send_data(Bytes::from(vec![b'x'; MIB as usize]), false)
                    .unwrap();
                streams.push((resp, body));
            }
            conns.push((send, conn));
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let peak = rss_bytes(pid);
        let mut answered = 0;
        for (resp, _body) in streams {
            match tokio::time::timeout(Duration::from_secs(10), resp).await {
                Ok(Ok(r)) => {
                    assert_eq!(r.status(), 408, "a stalled body gets 408");
                    answered += 1;
                }
                Ok(Err(_)) => answered += 1, // reset: closed too
                Err(_) => {}
            }
        }
        (answered, peak)
    });
    stop.store(true, Ordering::SeqCst);
    let peak = sampler.join().unwrap();
    let growth = peak_rss.saturating_sub(before);
    eprintln!(
        "stalled bodies: RSS +{} MiB, {answered} streams closed in {:?}, upstream peak {}",
        growth / MIB,
        started.elapsed(),
        peak
    );
    assert!(
        growth <= 256 * MIB,
        "1,000 stalled 8 MiB uploads grew the server by {} MiB",
        growth / MIB
    );
    assert_eq!(answered, 1000, "every stalled stream is closed");
    // Connections to the upstream are capped exactly (each holds a permit until it closes).
    assert!(
        (1..=50).contains(&peak),
        "1,000 concurrent uploads used {peak} upstream connections (cap 50)"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3 + 10),
        "closed within the body timeout (3 s) and some slack, took {:?}",
        started.elapsed()
    );
    let o = http_status(&server.url("/"), &[]);
    assert_eq!(o, "200", "a normal client is still served");
}

#[test]
fn request_bodies_over_the_limit_get_413_declared_or_not() {
    let (upstream, _, _, _) = reading_upstream(Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let tls = TestTls::new(dir.path());
    let server = start_upstream_server(upstream, &tls, &["--max-request-body", "1000"]);
    // Declared too large: answered 413 at once, before any of the body is read. (Over a real h2
    // client: the server then resets the stream with NO_ERROR, which curl sometimes reports as a
    // failed transfer when the reset overtakes its upload under load.)
    let declared = rt().block_on(async {
        let (send, _conn) = h2_connect(server.port, &tls, &h2::client::Builder::new()).await;
        let mut send = send.ready().await.unwrap();
        let mut req = request(server.port, "POST", "/form");
        req.headers_mut().insert(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from_static("5000"),
        );
        let (resp, mut body) = send.send_request(req, false).unwrap();
        // Queued before any answer can arrive; a reset afterwards does not matter here.
        let _ = body.send_data(Bytes::from(vec![b'x'; 5000]), true);
        resp.await.unwrap().status()
    });
    assert_eq!(declared, 413);
    let fits = http_status(&server.url("/form"), &["--data-binary", &"x".repeat(1000)]);
    assert_eq!(fits, "200");
    // No Content-Length: the limit is found while streaming.
    let status = rt().block_on(async {
        let (send, _conn) = h2_connect(server.port, &tls, &h2::client::Builder::new()).await;
        let mut send = send.ready().await.unwrap();
        let (resp, mut body) = send
            .send_request(request(server.port, "POST", "/form"), false)
            .unwrap();
        body.send_data(Bytes::from(vec![b'x'; 5000]), true).unwrap();
        resp.await.unwrap().status()
    });
    assert_eq!(status, 413);
}

#[test]
fn rapid_reset_gets_goaway_and_never_exceeds_the_upstream_pool() {
    let (upstream, _, peak, _) = reading_upstream(Duration::from_secs(1));
    let dir = tempfile::tempdir().unwrap();
    let tls = TestTls::new(dir.path());
    let server = start_upstream_server(
        upstream,
        &tls,
        &[
            "--upstream-max-connections",
            "8",
            "--max-pending-resets",
            "20",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    );
    let pid = server.child.id();
    let before = rss_bytes(pid);
    let (calm, pairs, errors) = rt().block_on(async {
        let (mut send, conn) = h2_connect(server.port, &tls, &h2::client::Builder::new()).await;
        let mut pairs = 0u64;
        // Where the client hears of the GOAWAY depends on timing: from `ready`, from
        // `send_request`, or from the connection itself. Keep every error.
        let mut errors: Vec<h2::Error> = Vec::new();
        for _ in 0..100_000 {
            send = match send.ready().await {
                Ok(s) => s,
                Err(e) => {
                    errors.push(e);
                    break;
                }
            };
            match send.send_request(request(server.port, "GET", "/slow"), false) {
                Ok((_resp, mut body)) => body.send_reset(h2::Reason::CANCEL),
                Err(e) => {
                    errors.push(e);
                    break;
                }
            }
            pairs += 1;
        }
        let closed = tokio::time::timeout(Duration::from_secs(10), conn)
            .await
            .expect("the server closes the connection")
            .unwrap();
        errors.extend(closed.err());
        let calm = errors
            .iter()
            .any(|e| e.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM));
        (calm, pairs, errors)
    });
    eprintln!(
        "rapid reset: connection closed after {pairs} pairs, upstream peak {} connections, RSS +{} MiB",
        peak.load(Ordering::SeqCst),
        rss_bytes(pid).saturating_sub(before) / MIB
    );
    // The client may hear of the GOAWAY or only of the closed socket (it is still writing when
    // the server closes); the server's count says which limit closed it.
    let metrics = server.metrics();
    let calm_count = metric_value(
        &metrics,
        "pushwise_limit_hits_total{limit=\"pending_resets\"} ",
    );
    assert!(
        calm_count >= 1.0,
        "GOAWAY ENHANCE_YOUR_CALM after {pairs} HEADERS+RST_STREAM pairs; client saw {errors:?} (calm: {calm})"
    );
    assert!(
        pairs < 100_000,
        "cut before the attack ended ({pairs} pairs)"
    );
    assert!(
        peak.load(Ordering::SeqCst) <= 8,
        "upstream connections peaked at {}",
        peak.load(Ordering::SeqCst)
    );
    assert!(rss_bytes(pid).saturating_sub(before) <= 256 * MIB);
    let o = http_status(&server.url("/"), &[]);
    assert_eq!(o, "200", "a normal client is still served");
}

#[test]
fn streams_over_the_total_cap_are_refused_and_reset_streams_free_their_upstream() {
    let (upstream, _, _, cancelled) = reading_upstream(Duration::from_secs(3));
    let dir = tempfile::tempdir().unwrap();
    let tls = TestTls::new(dir.path());
    let server = start_upstream_server(upstream, &tls, &["--max-streams", "2"]);
    rt().block_on(async {
        let (send, _conn) = h2_connect(server.port, &tls, &h2::client::Builder::new()).await;
        let mut pending = Vec::new();
        let mut send = send;
        for i in 0..6 {
            send = send.ready().await.unwrap();
            let (resp, _) = send
                .send_request(request(server.port, "GET", &format!("/s{i}")), true)
                .unwrap();
            pending.push(resp);
        }
        let mut refused = 0;
        let mut ok = 0;
        let mut streams = Vec::new();
        for r in pending {
            match tokio::time::timeout(Duration::from_secs(10), r)
                .await
                .unwrap()
            {
                Ok(resp) => {
                    assert_eq!(resp.status(), 200);
                    ok += 1;
                    streams.push(resp);
                }
                Err(e) => {
                    assert_eq!(e.reason(), Some(h2::Reason::REFUSED_STREAM), "{e}");
                    refused += 1;
                }
            }
        }
        assert_eq!(
            (ok, refused),
            (2, 4),
            "two handled at once, the rest refused"
        );
        // A stream reset while the upstream thinks cancels the upstream request.
        let mut send = send.ready().await.unwrap();
        let (resp, _) = send
            .send_request(request(server.port, "GET", "/cancelled"), true)
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(cancelled.load(Ordering::SeqCst), 0);
        drop(resp); // drops the stream: the client sends RST_STREAM(CANCEL)
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(
            cancelled.load(Ordering::SeqCst),
            1,
            "the upstream request of a reset stream is dropped before the upstream answers"
        );
    });
}

#[test]
fn connections_over_the_cap_are_closed_and_silent_ones_after_the_handshake_timeout() {
    let server = serve_site(&["--max-connections", "20", "--handshake-timeout", "1"]);
    let connect = || {
        let c = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c
    };
    let mut silent: Vec<_> = (0..20).map(|_| connect()).collect();
    std::thread::sleep(Duration::from_millis(200));
    // Over the cap: closed at once.
    for _ in 0..5 {
        let mut c = connect();
        let t = Instant::now();
        let mut b = [0u8; 1];
        let n = c.read(&mut b).unwrap_or(0);
        assert_eq!(n, 0, "closed, not served");
        assert!(
            t.elapsed() < Duration::from_millis(900),
            "{:?}",
            t.elapsed()
        );
    }
    // The silent ones are closed by the handshake timeout, freeing their slots.
    let t = Instant::now();
    for c in &mut silent {
        let mut b = [0u8; 1];
        assert_eq!(c.read(&mut b).unwrap_or(0), 0);
    }
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let o = http_status(&server.url("/"), &[]);
    assert_eq!(o, "200", "a normal client is served once slots are free");
}

#[test]
fn a_client_that_stops_reading_is_reset_after_the_send_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let tls = TestTls::new(dir.path());
    let root = site();
    let mut args = vec![
        "--root".to_string(),
        root.display().to_string(),
        "--analyze-every".into(),
        "0".into(),
        "--send-timeout".into(),
        "1".into(),
    ];
    args.extend(tls.args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&args);
    rt().block_on(async {
        // A window of 0: the server may send headers but no body byte.
        let mut b = h2::client::Builder::new();
        b.initial_window_size(0);
        let (send, _conn) = h2_connect(server.port, &tls, &b).await;
        let mut send = send.ready().await.unwrap();
        let (resp, _) = send
            .send_request(request(server.port, "GET", "/index.html"), true)
            .unwrap();
        let resp = resp.await.unwrap();
        assert_eq!(resp.status(), 200);
        let t = Instant::now();
        let mut body = resp.into_body();
        let got = tokio::time::timeout(Duration::from_secs(5), body.data())
            .await
            .expect("the server gives up within its send timeout");
        let err = got.expect("no data").expect_err("the stream is reset");
        assert_eq!(err.reason(), Some(h2::Reason::CANCEL), "{err}");
        assert!(
            t.elapsed() >= Duration::from_millis(900),
            "{:?}",
            t.elapsed()
        );
    });
}

#[test]
fn a_flood_of_path_variants_adds_few_dictionary_rows() {
    let mut server = serve_site(&[]);
    let run_ok = |path: &str| http_status(&server.url(path), &[]);
    // Variants of a real file are that file.
    for v in [
        "//index.html",
        "/./index.html",
        "/d7/../index.html",
        "/%69ndex.html",
    ] {
        assert_eq!(run_ok(v), "200", "{v}");
    }
    let urls = dir_file(&server, 100_000);
    let o = run(
        "h2load",
        &[
            "-i",
            urls.path().to_str().unwrap(),
            "-n",
            "100000",
            "-c",
            "4",
            "-m",
            "16",
            "-t",
            "1",
        ],
    );
    let out = text(&o);
    assert!(out.contains("100000 done"), "{out}");
    assert_eq!(server.stop(), 0);
    let strings = with_store(
        &server.db,
        |s| async move { s.count_strings().await.unwrap() },
    );
    eprintln!("path flood: 100,000 requests, {strings} dictionary rows");
    assert!(
        strings <= 1000,
        "100,000 distinct paths made {strings} dictionary rows"
    );
    let events = events(&server.db);
    assert!(
        events.len() >= 100_000,
        "every request is still recorded ({})",
        events.len()
    );
    assert!(
        events
            .iter()
            .filter(|e| e.status == 404)
            .all(|e| e.path == pushwise_store::event::ERROR_PATH),
        "404s are recorded under one path"
    );
}

/// 100,000 request URLs for distinct paths: 404s, variants of real files, query strings, 4 KB paths.
fn dir_file(server: &Server, n: usize) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    let long = "x".repeat(4000);
    for i in 0..n {
        let path = match i % 6 {
            0 => format!("/nope-{i}"),
            1 => format!("/./d{i}/../index.html"),
            2 => format!("/index.html?v={i}"),
            3 => format!("/{long}{i}"),
            4 => format!("/d{i}/%2e%2e/index.html"),
            _ => format!("//nope/{i}/"),
        };
        writeln!(f, "{}", server.url(&path)).unwrap();
    }
    f.flush().unwrap();
    f
}

#[test]
fn post_endpoints_are_never_learned_or_pushed() {
    let (upstream, _, _, _) = reading_upstream(Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let tls = TestTls::new(dir.path());
    let mut server = start_upstream_server(upstream, &tls, &[]);
    let referer = server.url("/");
    for i in 0..40 {
        let ua = format!("{BROWSER_UA} client-{i}");
        for (method, path) in [("GET", "/"), ("POST", "/api/submit"), ("GET", "/app.css")] {
            let mut args = vec!["-sk", "--http2", "-o", "/dev/null", "-A", &ua, "-X", method];
            if path != "/" {
                args.extend(["-e", &referer]);
            }
            if method == "POST" {
                args.extend(["--data", "a=1"]);
            }
            let url = server.url(path);
            args.push(&url);
            assert!(run("curl", &args).status.success());
        }
    }
    assert_eq!(server.stop(), 0);
    pushwise(&server.db, &["analyze", "--once"]);
    let show = pushwise_json(&server.db, &["sets", "show", "/", "--json"]);
    let rows = show.to_string();
    assert!(
        rows.contains("/app.css"),
        "the GET asset is learned: {rows}"
    );
    assert!(
        !rows.contains("/api/submit"),
        "the POST endpoint is not: {rows}"
    );
}

#[test]
fn database_files_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let mut server = serve_site(&[]);
    let o = run(
        "curl",
        &[
            "-sk",
            "--http2",
            "-o",
            "/dev/null",
            &server.url("/index.html"),
        ],
    );
    assert!(o.status.success());
    std::thread::sleep(Duration::from_millis(500));
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let wal = server.db.with_extension("db-wal");
    let shm = server.db.with_extension("db-shm");
    assert_eq!(mode(&server.db), 0o600);
    for f in [&wal, &shm] {
        if f.exists() {
            assert_eq!(mode(f), 0o600, "{}", f.display());
        }
    }
    assert_eq!(server.stop(), 0);
    assert_eq!(mode(&server.db), 0o600);
    assert!(
        !wal.exists(),
        "a clean exit checkpoints and removes the -wal file"
    );
}

/// An upstream that answers every request with the request head it received.
fn echo_upstream() -> u16 {
    http1_app(|head| {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{head}",
            head.len()
        )
        .into_bytes()
    })
}

/// The head the upstream saw and the client key recorded, for a request claiming to be `xff`.
fn forwarded_as(server: &Server, xff: &str) -> String {
    let o = run(
        "curl",
        &[
            "-sk",
            "--http2",
            "-H",
            &format!("x-forwarded-for: {xff}"),
            "-H",
            "x-real-ip: 6.6.6.6",
            "-H",
            "forwarded: for=6.6.6.6",
            &server.url("/whoami"),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).to_ascii_lowercase()
}

#[test]
fn forwarding_headers_are_believed_only_from_trusted_proxies() {
    let upstream = echo_upstream();
    let dir = tempfile::tempdir().unwrap();
    let tls = TestTls::new(dir.path());
    // Any client: its claims are dropped, the peer is the client.
    let mut server = start_upstream_server(upstream, &tls, &[]);
    for xff in ["1.2.3.4", "5.6.7.8"] {
        let head = forwarded_as(&server, xff);
        assert!(head.contains("x-forwarded-for: 127.0.0.1\r\n"), "{head}");
        assert!(!head.contains(xff) && !head.contains("6.6.6.6"), "{head}");
    }
    assert_eq!(server.stop(), 0);
    let clients: std::collections::HashSet<i64> =
        events(&server.db).iter().map(|e| e.client).collect();
    assert_eq!(
        clients.len(),
        1,
        "a spoofed X-Forwarded-For is not another client"
    );

    // Behind a trusted proxy (here: loopback), its X-Forwarded-For names the client.
    let mut server = start_upstream_server(upstream, &tls, &["--trusted-proxy", "127.0.0.1/32"]);
    for xff in ["1.2.3.4", "5.6.7.8"] {
        let head = forwarded_as(&server, xff);
        assert!(
            head.contains(&format!("x-forwarded-for: {xff}, 127.0.0.1\r\n")),
            "{head}"
        );
    }
    assert_eq!(server.stop(), 0);
    let clients: std::collections::HashSet<i64> =
        events(&server.db).iter().map(|e| e.client).collect();
    assert_eq!(clients.len(), 2, "each forwarded client has its own key");
}

#[test]
fn with_host_names_configured_other_hosts_are_served_but_never_pushed_hinted_or_recorded() {
    let (dir, db) = temp_db();
    prepare_sets(&db, &[("/", &["/css/site.css", "/js/app.js"])]);
    let mut s = Server::start_with_db(
        &[
            "--root",
            site().to_str().unwrap(),
            "--host",
            "example.com",
            "--holdout",
            "0",
            "--analyze-every",
            "0",
            "--batch-interval-ms",
            "20",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        dir,
        db,
    );
    // By IP literal, as a scanner asks: served, nothing announced.
    let out = nghttp(&[&s.url("/")]);
    assert!(out.contains(":status: 200"), "{out}");
    assert!(
        promised_paths(&out).is_empty() && early_hint_links(&out).is_empty(),
        "a foreign host got the site's set: {out}"
    );
    // By the site's name (any case, any port): the set goes out.
    let out = nghttp(&["-H", ":authority: Example.COM:8443", &s.url("/about.html")]);
    assert!(out.contains(":status: 200"), "{out}");
    let out = nghttp(&["-H", ":authority: example.com", &s.url("/")]);
    let mut sent = promised_paths(&out);
    sent.extend(early_hint_links(&out));
    assert!(
        sent.iter().any(|p| p.contains("/css/site.css")),
        "the configured host got nothing: {out}"
    );
    let metrics = s.metrics();
    assert!(
        metrics.contains("pushwise_foreign_host_requests_total 1"),
        "{metrics}"
    );
    assert_eq!(s.stop(), 0);
    let recorded: Vec<String> = events(&s.db)
        .into_iter()
        .filter(|e| e.push == 0)
        .map(|e| e.path)
        .collect();
    assert!(
        recorded.iter().filter(|p| *p == "/").count() == 1
            && recorded.contains(&"/about.html".to_string()),
        "only the configured host's requests are recorded: {recorded:?}"
    );
}

#[test]
fn shutdown_closes_requests_still_in_flight_after_the_grace_period_and_keeps_recorded_events() {
    // An upstream that answers /slow after a minute: only the grace period can end it.
    let slow_seen = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&slow_seen);
    let app = http1_app(move |head| {
        if head.starts_with("GET /slow") {
            seen.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_secs(60));
        }
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n"
            .to_vec()
    });
    let dir = tempfile::tempdir().unwrap();
    let tls = TestTls::new(dir.path());
    let mut server = start_upstream_server(
        app,
        &tls,
        &["--shutdown-grace", "2", "--upstream-timeout", "120"],
    );
    for _ in 0..3 {
        let o = http_status(&server.url("/fast"), &[]);
        assert_eq!(o, "200");
    }
    let mut slow = std::process::Command::new("curl")
        .args(["-sk", "--http2", "--max-time", "90", "-o", "/dev/null"])
        .arg(server.url("/slow"))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while slow_seen.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the slow request reached the upstream"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    assert_eq!(server.stop(), 0, "a clean exit: {}", server.stderr());
    let took = started.elapsed();
    eprintln!("SIGTERM with a request in flight: exited after {took:?} (grace 2 s)");
    assert!(
        took >= Duration::from_millis(1_900),
        "the in-flight request was given its grace period ({took:?})"
    );
    assert!(
        took < Duration::from_secs(8),
        "the grace period is a deadline ({took:?})"
    );
    assert!(
        server.stderr().contains("grace period over"),
        "{}",
        server.stderr()
    );
    // The client hears the connection end instead of waiting out its own timeout.
    let deadline = Instant::now() + Duration::from_secs(5);
    while slow.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the slow client was disconnected"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let fast = events(&server.db)
        .into_iter()
        .filter(|e| e.path == "/fast")
        .count();
    assert_eq!(fast, 3, "every answered request was recorded before exit");
}

#[test]
fn without_host_flags_only_the_names_the_certificate_covers_get_sets() {
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec![
        "shop.example".to_string(),
        "*.cdn.example".to_string(),
    ])
    .unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let db = dir.path().join("pushwise.db");
    prepare_sets(&db, &[("/", &["/css/site.css", "/js/app.js"])]);
    let s = Server::start_with_db(
        &[
            "--root",
            site().to_str().unwrap(),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--holdout",
            "0",
            "--analyze-every",
            "0",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        dir,
        db,
    );
    let announced = |authority: Option<&str>| {
        let h = authority.map(|a| format!(":authority: {a}"));
        let mut args: Vec<&str> = h.iter().flat_map(|h| ["-H", h.as_str()]).collect();
        let url = s.url("/");
        args.push(&url);
        let out = nghttp(&args);
        assert!(out.contains(":status: 200"), "{out}");
        let mut sent = promised_paths(&out);
        sent.extend(early_hint_links(&out));
        !sent.is_empty()
    };
    assert!(
        !announced(None),
        "by IP literal: not a name the certificate covers"
    );
    assert!(!announced(Some("evil.example")));
    assert!(
        !announced(Some("a.b.cdn.example")),
        "a wildcard covers one label"
    );
    assert!(announced(Some("SHOP.example:8443")));
    assert!(announced(Some("img.cdn.example")));
    let metrics = s.metrics();
    assert!(
        metrics.contains("pushwise_foreign_host_requests_total 3"),
        "{metrics}"
    );
    assert!(
        s.stderr().contains("shop.example,*.cdn.example"),
        "{}",
        s.stderr()
    );
}

/// A log of `/p.html` views fetching `/a.css`: one from each of 100 networks over 50 minutes,
/// and 200 from one /24 in 400 seconds, each with its own User-Agent, fetching `/evil.png` too.
/// In time order, as a server writes its log.
fn poisoning_log() -> String {
    let line = |ip: &str, t: i64, path: &str, referer: &str, ua: &str| {
        let date = pushwise_store::time::format_clf_date(1_767_225_600_000 + t * 1000, 0);
        let l =
            format!("{ip} - - [{date}] \"GET {path} HTTP/1.1\" 200 5000 \"{referer}\" \"{ua}\"\n");
        (t, l)
    };
    let r = "https://example.com/p.html";
    let mut lines = Vec::new();
    for i in 0..100 {
        let ip = format!("11.{i}.0.1");
        lines.push(line(&ip, i * 30, "/p.html", "-", BROWSER_UA));
        lines.push(line(&ip, i * 30 + 1, "/a.css", r, BROWSER_UA));
    }
    for i in 0..200 {
        let (ip, ua) = (
            format!("203.0.113.{}", i % 250 + 1),
            format!("{BROWSER_UA} r{i}"),
        );
        lines.push(line(&ip, 100 + i * 2, "/p.html", "-", &ua));
        lines.push(line(&ip, 100 + i * 2, "/a.css", r, &ua));
        lines.push(line(&ip, 101 + i * 2, "/evil.png", r, &ua));
    }
    lines.sort_by_key(|(t, _)| *t);
    lines.into_iter().map(|(_, l)| l).collect()
}

#[test]
fn one_network_rotating_user_agents_cannot_put_an_asset_in_a_set() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    std::fs::write(&log, poisoning_log()).unwrap();
    let learned = |cap: &str| {
        let db = dir.path().join(format!("cap-{cap}.db"));
        let log = log.to_str().unwrap();
        pushwise(
            &db,
            &["import", log, "--host", "example.com", "--prefix-cap", cap],
        );
        pushwise(&db, &["threshold", "set", "0.3", "--min-support", "5"]);
        pushwise(&db, &["analyze", "--once"]);
        let d = pushwise_json(
            &db,
            &[
                "plan",
                "--page",
                "/p.html",
                "--user-agent",
                BROWSER_UA,
                "--json",
            ],
        );
        let over = events(&db).iter().filter(|e| e.over_cap).count();
        let assets: Vec<String> = d["assets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["path"].as_str().unwrap().to_string())
            .collect();
        (assets, over)
    };
    // The default cap: the network teaches 10 views in its window; the other 190 are recorded
    // as over the cap, and /evil.png (10 of 110 views) stays out.
    let (assets, over) = learned("10");
    assert_eq!(assets, ["/a.css"]);
    assert_eq!(over, 190);
    // Without the cap the same log puts it in the set (200 of 300 views): the cap is what held.
    let (assets, over) = learned("0");
    assert!(assets.contains(&"/evil.png".to_string()), "{assets:?}");
    assert_eq!(over, 0);
}

#[test]
fn the_server_marks_page_views_over_their_networks_cap_and_counts_them() {
    // Behind a trusted proxy, as in production: the client is the X-Forwarded-For address.
    let s = serve_site(&[
        "--trusted-proxy",
        "127.0.0.1",
        "--prefix-cap",
        "10",
        "--batch-interval-ms",
        "20",
        "--metrics-listen",
        "127.0.0.1:0",
    ]);
    let view = |from: &str, ua: &str| {
        let xff = format!("X-Forwarded-For: {from}");
        let o = http_status(&s.url("/"), &["-H", &xff, "-A", ua]);
        assert_eq!(o, "200");
    };
    for i in 0..15 {
        view(
            &format!("203.0.113.{}", i + 1),
            &format!("{BROWSER_UA} r{i}"),
        );
    }
    for _ in 0..3 {
        view("198.51.100.1", BROWSER_UA);
    }
    // Assets are never capped, only page views.
    for _ in 0..12 {
        let o = run(
            "curl",
            &[
                "-sk",
                "-o",
                "/dev/null",
                "-H",
                "X-Forwarded-For: 203.0.113.99",
                &s.url("/css/site.css"),
            ],
        );
        assert!(o.status.success());
    }
    let metrics = s.metrics();
    assert!(
        metrics.contains("pushwise_limit_hits_total{limit=\"prefix_cap\"} 5"),
        "{metrics}"
    );
    let mut s = s;
    assert_eq!(s.stop(), 0);
    let ev = events(&s.db);
    let over: Vec<_> = ev.iter().filter(|e| e.over_cap).collect();
    assert_eq!(over.len(), 5, "{over:?}");
    assert!(over.iter().all(|e| e.path == "/" && e.is_page));
    assert_eq!(
        ev.iter().filter(|e| e.path == "/" && !e.over_cap).count(),
        13
    );
}

#[test]
fn invented_referer_paths_add_one_dictionary_row() {
    let dir = tempfile::tempdir().unwrap();
    let tls = TestTls::new(dir.path());
    let mut args = vec![
        "--root".to_string(),
        site().display().to_string(),
        "--analyze-every".into(),
        "0".into(),
        "--batch-interval-ms".into(),
        "20".into(),
    ];
    args.extend(tls.args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = Server::start(&args);
    let port = server.port;
    // One real page first: a Referer naming it is kept.
    assert_eq!(http_status(&server.url("/"), &[]), "200");
    const N: usize = 20_000;
    rt().block_on(async {
        // Windows for a whole batch of answers: they are read one after another.
        let mut builder = h2::client::Builder::new();
        builder
            .initial_window_size(1 << 20)
            .initial_connection_window_size(64 << 20);
        let (mut send, _conn) = h2_connect(port, &tls, &builder).await;
        for batch in 0..N / 100 {
            let mut answers = Vec::new();
            for i in 0..100 {
                let n = batch * 100 + i;
                let referer = if n % 1000 == 0 {
                    "/".to_string()
                } else {
                    format!("/invented/{n}")
                };
                let mut req = request(port, "GET", "/css/site.css");
                let value = format!("https://localhost:{port}{referer}");
                req.headers_mut()
                    .insert(http::header::REFERER, value.parse().unwrap());
                send = send.ready().await.unwrap();
                answers.push(send.send_request(req, true).unwrap().0);
            }
            for a in answers {
                let resp = a.await.unwrap();
                assert_eq!(resp.status(), 200);
                // Read to the end: a dropped body would be reset, and h2 limits those.
                let mut body = resp.into_body();
                while let Some(chunk) = body.data().await {
                    let n = chunk.unwrap().len();
                    let _ = body.flow_control().release_capacity(n);
                }
            }
        }
    });
    assert_eq!(server.stop(), 0);
    let strings = with_store(
        &server.db,
        |s| async move { s.count_strings().await.unwrap() },
    );
    eprintln!("referer flood: {N} invented Referer paths, {strings} dictionary rows");
    assert!(
        strings <= 100,
        "{N} invented Referers made {strings} dictionary rows"
    );
    let ev = events(&server.db);
    let css: Vec<_> = ev.iter().filter(|e| e.path == "/css/site.css").collect();
    assert_eq!(css.len(), N, "every request is still recorded");
    let named_root = css
        .iter()
        .filter(|e| e.referer.as_deref() == Some("/"))
        .count();
    assert_eq!(
        named_root,
        N / 1000,
        "a Referer naming an answered page is kept"
    );
    assert!(
        css.iter()
            .all(|e| matches!(e.referer.as_deref(), Some("/" | "!other"))),
        "every invented one is recorded as other"
    );
}

/// A connection's streams share the connection's task (see `server/src/coalesce.rs`): a stream
/// waiting on a slow upstream must not hold back the others on the same connection.
#[test]
fn a_stream_waiting_on_a_slow_upstream_does_not_hold_back_the_other_streams_of_its_connection() {
    let app = http1_app(|head| {
        if head.starts_with("GET /slow") {
            std::thread::sleep(Duration::from_secs(3));
        }
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n"
            .to_vec()
    });
    let dir = tempfile::tempdir().unwrap();
    let tls = TestTls::new(dir.path());
    let server = start_upstream_server(app, &tls, &[]);
    rt().block_on(async {
        let (send, _conn) = h2_connect(server.port, &tls, &h2::client::Builder::new()).await;
        let mut send = send.ready().await.unwrap();
        let started = Instant::now();
        let (slow, _) = send
            .send_request(request(server.port, "GET", "/slow"), true)
            .unwrap();
        let slow = tokio::spawn(slow);
        for i in 0..20 {
            send = send.ready().await.unwrap();
            let (resp, _) = send
                .send_request(request(server.port, "GET", &format!("/fast{i}")), true)
                .unwrap();
            let resp = tokio::time::timeout(Duration::from_secs(2), resp)
                .await
                .unwrap_or_else(|_| panic!("/fast{i} waited for /slow"))
                .unwrap();
            assert_eq!(resp.status(), 200);
        }
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "the fast streams took {:?}, as long as the slow one",
            started.elapsed()
        );
        assert!(!slow.is_finished(), "the slow stream is still waiting");
        let slow = tokio::time::timeout(Duration::from_secs(10), slow)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(slow.status(), 200);
        assert!(started.elapsed() >= Duration::from_secs(3));
    });
}
