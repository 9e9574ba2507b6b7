//! Page loads in a real browser: headless Chromium loads a page with a cold cache, and the page
//! itself reports its load event and largest contentful paint back to the application.
//!
//! Why the page reports: Chromium's `--dump-dom` exits at the load event and its virtual time
//! (`--virtual-time-budget`) is not wall-clock time, so timings read that way mean nothing. Here
//! the application adds a small script to each HTML page that, shortly after `load`, requests
//! [`TIMING_PATH`] with `performance`'s own numbers (milliseconds since navigation start); the
//! application hands them to the caller, which then stops the browser.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A certificate for `localhost` that Chromium trusts by its key (`--ignore-certificate-errors-
/// spki-list`) rather than by ignoring certificate errors.
///
/// Why: Chromium never reuses a response that came with a certificate error from its cache, so
/// under `--ignore-certificate-errors` every asset an Early Hint preloaded was requested a second
/// time once the page asked for it (its net log showed both requests go out), and the hints' gain
/// was measured as far smaller than it is. With the key pinned, the page's requests are answered
/// from the preloads.
pub struct TestCert {
    pub cert_pem: String,
    pub key_pem: String,
    /// base64 of the SHA-256 of the certificate's SubjectPublicKeyInfo, as Chromium wants it.
    pub spki_sha256: String,
}

impl TestCert {
    pub fn generate() -> anyhow::Result<TestCert> {
        use base64::Engine as _;
        use rcgen::PublicKeyData as _;
        use sha2::Digest as _;
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
        let spki = sha2::Sha256::digest(ck.signing_key.subject_public_key_info());
        Ok(TestCert {
            cert_pem: ck.cert.pem(),
            key_pem: ck.signing_key.serialize_pem(),
            spki_sha256: base64::engine::general_purpose::STANDARD.encode(spki),
        })
    }

    /// Writes `cert.pem` and `key.pem` into `dir` and returns their paths.
    pub fn write(&self, dir: &Path) -> std::io::Result<(PathBuf, PathBuf)> {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, &self.cert_pem)?;
        std::fs::write(&key, &self.key_pem)?;
        Ok((cert, key))
    }
}

/// Where the page reports its timing (answered 204 by [`SlowSite`]).
pub const TIMING_PATH: &str = "/__pushwise_timing";

/// What one page load reported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// `loadEventStart` of the navigation, ms since navigation start.
    pub load_ms: f64,
    /// The last largest-contentful-paint candidate before the report, ms since navigation start.
    pub lcp_ms: f64,
    /// First contentful paint, ms since navigation start (0 if the page did not say).
    pub fcp_ms: f64,
    /// The HTML response's first byte (`responseStart`), ms since navigation start (0 if unsaid).
    pub response_ms: f64,
    /// Whether the last LCP candidate was an image (else text).
    pub lcp_image: bool,
}

/// The script added before `</body>` of each HTML page.
const REPORTER: &str = r#"<script>
(() => {
  let lcp = 0, img = 0;
  new PerformanceObserver(l => {
    for (const e of l.getEntries()) { lcp = e.startTime; img = e.url ? 1 : 0; }
  }).observe({type: 'largest-contentful-paint', buffered: true});
  addEventListener('load', () => setTimeout(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const fcp = performance.getEntriesByName('first-contentful-paint')[0];
    fetch('/__pushwise_timing?load=' + nav.loadEventStart + '&lcp=' + lcp + '&fcp=' +
      (fcp ? fcp.startTime : 0) + '&resp=' + nav.responseStart + '&img=' + img);
  }, 300));
})();
</script>"#;

/// An HTTP/1.1 application serving a directory that thinks `think` before answering each HTML
/// page (the time Early Hints are for), with the timing reporter in each page.
pub struct SlowSite {
    pub port: u16,
    timings: Mutex<Receiver<Timing>>,
}

impl SlowSite {
    /// Serves `root` on `127.0.0.1:0`, one thread per connection, keep-alive.
    pub fn start(root: PathBuf, think: Duration) -> std::io::Result<SlowSite> {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        let (tx, rx) = channel();
        let root = Arc::new(root);
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { return };
                let (root, tx) = (Arc::clone(&root), tx.clone());
                std::thread::spawn(move || serve_connection(c, &root, think, &tx));
            }
        });
        Ok(SlowSite {
            port,
            timings: Mutex::new(rx),
        })
    }

    /// Drops timings reported by earlier loads (a load stopped late may still report).
    fn drain(&self) {
        let rx = self.timings.lock().unwrap_or_else(|e| e.into_inner());
        while rx.try_recv().is_ok() {}
    }

    fn next(&self, timeout: Duration) -> Option<Timing> {
        let rx = self.timings.lock().unwrap_or_else(|e| e.into_inner());
        rx.recv_timeout(timeout).ok()
    }
}

fn serve_connection(c: TcpStream, root: &Path, think: Duration, timings: &Sender<Timing>) {
    let _ = c.set_nodelay(true);
    let Ok(write_half) = c.try_clone() else {
        return;
    };
    let mut w = write_half;
    let mut r = BufReader::new(c);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        if let Some(n) = headers
            .get("content-length")
            .and_then(|v| v.parse::<u64>().ok())
        {
            let _ = std::io::copy(&mut (&mut r).take(n), &mut std::io::sink());
        }
        let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let (status, ctype, body) = respond(&target, root, think, timings);
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n\
             cache-control: public, max-age=3600\r\n\r\n",
            body.len()
        );
        if w.write_all(head.as_bytes()).is_err() || w.write_all(&body).is_err() {
            return;
        }
    }
}

fn respond(
    target: &str,
    root: &Path,
    think: Duration,
    timings: &Sender<Timing>,
) -> (&'static str, &'static str, Vec<u8>) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path == TIMING_PATH {
        let q: HashMap<&str, f64> = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
            .collect();
        if let (Some(&load_ms), Some(&lcp_ms)) = (q.get("load"), q.get("lcp")) {
            let _ = timings.send(Timing {
                load_ms,
                lcp_ms,
                fcp_ms: q.get("fcp").copied().unwrap_or(0.0),
                response_ms: q.get("resp").copied().unwrap_or(0.0),
                lcp_image: q.get("img").is_some_and(|&v| v > 0.0),
            });
        }
        return ("204 No Content", "text/plain", Vec::new());
    }
    let mut rel = path.trim_start_matches('/').to_string();
    if rel.is_empty() || rel.ends_with('/') {
        rel.push_str("index.html");
    }
    if rel.split('/').any(|c| c == "..") {
        return ("404 Not Found", "text/plain", b"not found\n".to_vec());
    }
    let Ok(mut body) = std::fs::read(root.join(&rel)) else {
        return ("404 Not Found", "text/plain", b"not found\n".to_vec());
    };
    let ctype = match rel.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css",
        "js" => "text/javascript",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    };
    if rel.ends_with(".html") {
        std::thread::sleep(think);
        let text = String::from_utf8_lossy(&body).into_owned();
        let text = match text.rfind("</body>") {
            Some(i) => format!("{}{REPORTER}{}", &text[..i], &text[i..]),
            None => format!("{text}{REPORTER}"),
        };
        body = text.into_bytes();
    }
    ("200 OK", ctype, body)
}

/// Loads `url` in a fresh headless Chromium (a new profile: a cold cache) and returns what the
/// page reported, or an error when it reported nothing within `timeout`.
pub fn load(
    chromium: &str,
    site: &SlowSite,
    url: &str,
    cert: &TestCert,
    timeout: Duration,
) -> anyhow::Result<Timing> {
    let profile = std::env::temp_dir().join(format!(
        "pushwise-chromium-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    site.drain();
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--remote-debugging-port=0",
        ])
        .arg(format!(
            "--ignore-certificate-errors-spki-list={}",
            cert.spki_sha256
        ))
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start {chromium}: {e} (apt-get install chromium)"))?;
    let got = site.next(timeout);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&profile);
    got.ok_or_else(|| anyhow::anyhow!("{url}: the page reported no timing within {timeout:?}"))
}

/// The median and 90th percentile of `xs` (nearest rank), or zeros for none.
pub fn median_p90(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    (at(0.5), at(0.9))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_get_the_reporter_and_the_report_reaches_the_caller() {
        let dir = std::env::temp_dir().join(format!("pushwise-slowsite-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("index.html"),
            "<html><body><h1>x</h1></body></html>",
        )
        .unwrap();
        let site = SlowSite::start(dir.clone(), Duration::from_millis(10)).unwrap();
        // One whole response (head and body, which arrive in separate writes) on a kept-alive
        // connection: read until the head's content-length is in.
        let get = |target: &str| {
            let mut c = TcpStream::connect(("127.0.0.1", site.port)).unwrap();
            write!(c, "GET {target} HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let text = String::from_utf8_lossy(&got).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if body.len() >= len {
                        return text;
                    }
                }
                let n = c.read(&mut buf).unwrap();
                assert!(n > 0, "closed mid-response: {text}");
                got.extend_from_slice(&buf[..n]);
            }
        };
        let page = get("/");
        assert!(
            page.starts_with("HTTP/1.1 200") && page.contains("__pushwise_timing"),
            "{page}"
        );
        assert!(get("/../etc/passwd").starts_with("HTTP/1.1 404"));
        assert!(get(&format!("{TIMING_PATH}?load=812.5&lcp=640")).starts_with("HTTP/1.1 204"));
        assert_eq!(
            site.next(Duration::from_secs(1)),
            Some(Timing {
                load_ms: 812.5,
                lcp_ms: 640.0,
                fcp_ms: 0.0,
                response_ms: 0.0,
                lcp_image: false,
            })
        );
        let all = format!("{TIMING_PATH}?load=812.5&lcp=640&fcp=420.5&resp=260&img=1");
        assert!(get(&all).starts_with("HTTP/1.1 204"));
        assert_eq!(
            site.next(Duration::from_secs(1)),
            Some(Timing {
                load_ms: 812.5,
                lcp_ms: 640.0,
                fcp_ms: 420.5,
                response_ms: 260.0,
                lcp_image: true,
            })
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn median_and_p90_by_nearest_rank() {
        let xs: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(median_p90(&xs), (5.0, 9.0));
        assert_eq!(median_p90(&[3.0]), (3.0, 3.0));
        assert_eq!(median_p90(&[]), (0.0, 0.0));
    }
}
