//! Shared helpers for the end-to-end tests: start the real `pushwise` binary on 127.0.0.1:0 with a
//! fresh database, talk to it with real clients (nghttp, curl, h2load), stop it with SIGTERM.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BROWSER_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pushwise")
}

pub fn site() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/site")
}

/// A running server; killed on drop if not stopped.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub db: PathBuf,
    pub dir: tempfile::TempDir,
    stderr_log: PathBuf,
    /// `http://ADDR/metrics` when started with `--metrics-listen`.
    pub metrics_url: Option<String>,
}

impl Server {
    /// Starts `pushwise serve` with `args` (plus `--listen 127.0.0.1:0` and a temp `--db`).
    pub fn start(args: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("pushwise.db");
        Self::start_with_db(args, dir, db)
    }

    pub fn start_with_db(args: &[&str], dir: tempfile::TempDir, db: PathBuf) -> Server {
        let stderr_log = dir.path().join("stderr.log");
        let mut child = Command::new(bin())
            .arg("--db")
            .arg(&db)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_log).unwrap())
            .spawn()
            .expect("start pushwise");
        let stdout = child.stdout.take().unwrap();
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let mut metrics_url = None;
        if args.contains(&"--metrics-listen") {
            let mut m = String::new();
            reader.read_line(&mut m).unwrap();
            metrics_url = m.trim().strip_prefix("metrics on ").map(String::from);
        }
        let port = line
            .trim()
            .strip_prefix("listening on https://127.0.0.1:")
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first line {line:?}; stderr: {}",
                    std::fs::read_to_string(&stderr_log).unwrap_or_default()
                )
            })
            .parse()
            .unwrap();
        Server {
            child,
            port,
            db,
            dir,
            stderr_log,
            metrics_url,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// One scrape of `/metrics` (the server must have been started with `--metrics-listen`).
    pub fn metrics(&self) -> String {
        let url = self
            .metrics_url
            .as_deref()
            .expect("started with --metrics-listen");
        text(&run("curl", &["-s", url]))
    }

    /// SIGTERM, then wait for exit; returns the exit status code.
    pub fn stop(&mut self) -> i32 {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("server did not exit within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd} (installed by .ci/run): {e}"))
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The HTTP status `curl` (HTTP/2, certificate not checked) gets for `url`, with `extra` arguments
/// (headers, a User-Agent, a body) before it; `000` when the request failed.
pub fn http_status(url: &str, extra: &[&str]) -> String {
    let mut args = vec!["-sk", "--http2", "-o", "/dev/null", "-w", "%{http_code}"];
    args.extend_from_slice(extra);
    args.push(url);
    text(&run("curl", &args))
}

/// `nghttp -nv` (verbose frames, no output) with extra args, as a browser unless the args set a
/// User-Agent of their own.
pub fn nghttp(args: &[&str]) -> String {
    let ua = format!("user-agent: {BROWSER_UA}");
    let mut all = vec!["-nv"];
    if !args
        .iter()
        .any(|a| a.to_ascii_lowercase().starts_with("user-agent:"))
    {
        all.extend(["-H", ua.as_str()]);
    }
    all.extend_from_slice(args);
    text(&run("nghttp", &all))
}

/// Runs a `pushwise` subcommand against `db` to its end.
fn pushwise_output(db: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap()
}

/// Runs a `pushwise` subcommand against `db`; panics with its output on failure.
pub fn pushwise(db: &Path, args: &[&str]) -> String {
    let o = pushwise_output(db, args);
    assert!(o.status.success(), "pushwise {args:?} failed: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs a `pushwise` subcommand against `db` that must fail; returns its stdout and stderr.
pub fn pushwise_fails(db: &Path, args: &[&str]) -> String {
    let o = pushwise_output(db, args);
    assert!(
        !o.status.success(),
        "pushwise {args:?} succeeded: {}",
        text(&o)
    );
    text(&o)
}

/// A combined-format log of `views` browser views of `page` entering the site, each fetching
/// `assets` a second later with the page as Referer, from distinct clients three seconds apart.
pub fn browser_views_log(page: &str, assets: &[&str], views: usize) -> String {
    let mut log = String::new();
    for i in 0..views {
        let ts = |s: usize| {
            format!(
                "[10/Oct/2026:{:02}:{:02}:{:02} +0000]",
                10 + i / 1200,
                i / 20 % 60,
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

pub fn pushwise_json(db: &Path, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&pushwise(db, args)).unwrap()
}

/// Events in the database, read through the store.
pub fn events(db: &Path) -> Vec<pushwise_store::rows::EventRow> {
    with_store(
        db,
        |s| async move { s.load_events(i64::MIN).await.unwrap() },
    )
}

/// Runs `f` on the store at `db` (opened, and closed afterwards) on a runtime of its own.
pub fn with_store<T, F: std::future::Future<Output = T>>(
    db: &Path,
    f: impl FnOnce(pushwise_store::Store) -> F,
) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = pushwise_store::Store::open(db).await.unwrap();
        let out = f(s.clone()).await;
        s.close().await;
        out
    })
}

/// Headers of the response to stream 13 (nghttp's first request) from `nghttp -v` output.
pub fn header<'a>(out: &'a str, name: &str) -> Option<&'a str> {
    out.lines().find_map(|l| {
        let l = l.trim();
        let pos = l.find(&format!("{name}: "))?;
        Some(l[pos + name.len() + 2..].trim())
    })
}

/// Writes a generation whose page-wide set for each `(page, assets)` is exactly `assets`, in order.
pub fn prepare_sets(db: &Path, sets: &[(&str, &[&str])]) {
    use pushwise_store::Context;
    use pushwise_store::rows::{AsType, NewGeneration, PageStat, Reason, SetRow};
    with_store(db, |s| async move {
        let mut g = NewGeneration {
            created_ms: 1,
            ..Default::default()
        };
        for (page, assets) in sets {
            g.pages.push(PageStat {
                page: page.to_string(),
                context: Context::PageWide,
                views: 100,
                weighted: 100.0,
                uses_own: true,
            });
            for (i, a) in assets.iter().enumerate() {
                g.assets.push(SetRow {
                    page: page.to_string(),
                    context: Context::PageWide,
                    asset: a.to_string(),
                    probability: 0.9,
                    support: 100,
                    delay_ms: i as i64,
                    bytes: 1000,
                    as_type: AsType::of(a),
                    in_set: true,
                    position: i as i64,
                    reason: Reason::Ok,
                });
            }
        }
        s.write_generation(&g).await.unwrap();
    });
}

/// The header part of an `nghttp -v` "recv (stream_id=N) name: value" line.
fn recv_header(line: &str) -> Option<&str> {
    let i = line.find("recv (stream_id=")?;
    let rest = &line[i..];
    Some(rest[rest.find(") ")? + 2..].trim())
}

/// Paths promised in `nghttp -v` output, in the order the PUSH_PROMISE frames arrived.
pub fn promised_paths(out: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut last_path: Option<String> = None;
    for l in out.lines() {
        if let Some(h) = recv_header(l) {
            if let Some(p) = h.strip_prefix(":path: ") {
                last_path = Some(p.to_string());
            }
        } else if l.contains("recv PUSH_PROMISE frame") {
            paths.extend(last_path.take());
        }
    }
    paths
}

/// `link:` header values of 103 responses in `nghttp -v` output (empty when there was none).
pub fn early_hint_links(out: &str) -> Vec<String> {
    let mut links = Vec::new();
    let mut in_103 = false;
    for l in out.lines() {
        match recv_header(l) {
            Some(":status: 103") => in_103 = true,
            Some(h) if in_103 => {
                if let Some(v) = h.strip_prefix("link: ") {
                    links.push(v.to_string());
                }
            }
            _ => in_103 = false,
        }
    }
    links
}

/// Reads an HTTP/1.1 request head (up to the blank line) from a test application's socket.
/// `None` when the peer closed or failed before a whole head arrived.
pub fn read_request_head(c: &mut impl std::io::Read) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match c.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// The value of the sample in `metrics` whose line starts with `name` (a metric name with its
/// trailing space, or with its label set), or 0 when there is none.
pub fn metric_value(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A fresh temporary directory and the path of a database inside it (not created yet).
pub fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pushwise.db");
    (dir, db)
}

/// `pushwise serve --root examples/site --analyze-every 0` plus `extra`, on a fresh database.
pub fn serve_site(extra: &[&str]) -> Server {
    let root = site();
    let mut args = vec!["--root", root.to_str().unwrap(), "--analyze-every", "0"];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// A test HTTP/1.1 application on `127.0.0.1:0`: for each connection (on its own thread) the
/// request head goes to `respond`, whose bytes are written back before the connection closes.
/// Returns the port.
///
/// One request per connection, so `respond` must say `Connection: close`: a response that does
/// not invites pushwise's upstream pool to reuse the connection, and a request sent on it just as
/// it closes fails (502), which made a test flaky.
pub fn http1_app(respond: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static) -> u16 {
    use std::io::Write;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let respond = std::sync::Arc::new(respond);
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let respond = std::sync::Arc::clone(&respond);
            std::thread::spawn(move || {
                if let Some(req) = read_request_head(&mut c) {
                    let _ = c.write_all(&respond(&req));
                }
            });
        }
    });
    port
}

/// A certificate for a test server (`--tls-cert`/`--tls-key` files in `dir`) and a TLS client
/// that trusts exactly it.
pub struct TestTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client: std::sync::Arc<rustls::ClientConfig>,
}

impl TestTls {
    pub fn new(dir: &Path) -> TestTls {
        let s = pushwise_server::tls::generate_self_signed().unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, &s.cert_pem).unwrap();
        std::fs::write(&key, &s.key_pem).unwrap();
        TestTls {
            cert,
            key,
            client: pushwise_bench::loader::tls_trusting(&s.cert_der),
        }
    }

    /// `--tls-cert F --tls-key F` for `Server::start`.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.cert.display().to_string(),
            "--tls-key".into(),
            self.key.display().to_string(),
        ]
    }
}

/// An HTTP/2 connection to `127.0.0.1:port` made with `builder` (a raw h2 client, for tests that
/// misbehave on purpose). The connection's driver runs on its own task; its result says how the
/// server closed the connection.
pub async fn h2_connect(
    port: u16,
    tls: &TestTls,
    builder: &h2::client::Builder,
) -> (
    h2::client::SendRequest<bytes::Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::clone(&tls.client));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let io = connector.connect(name, tcp).await.unwrap();
    let (send, conn) = builder.handshake(io).await.unwrap();
    (send, tokio::spawn(conn))
}

/// The resident memory of process `pid`, in bytes (from /proc).
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}
