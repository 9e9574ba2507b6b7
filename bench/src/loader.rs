//! A browser-like HTTP/2 page loader: fetches a page, discovers subresources in the HTML and in
//! stylesheets as a browser does, uses pushed streams instead of requesting them, starts fetching
//! hinted assets as soon as a 103 arrives, and reports the time to the last subresource.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use h2::client::SendRequest;
use http::{HeaderValue, Request, header};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::site::{css_refs, html_refs, resolve};

/// How the simulated browser behaves.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Where to connect (the server, or a delay proxy in front of it).
    pub connect: SocketAddr,
    /// The `:authority` to send (what the server sees as its host).
    pub authority: String,
    /// Accept server push (SETTINGS_ENABLE_PUSH=1).
    pub push: bool,
    /// Start fetching 103 Early Hints `Link: rel=preload` targets at once (what Chrome does).
    pub follow_hints: bool,
    pub user_agent: String,
    /// Fetch subresources (false: a crawler that fetches the page only).
    pub subresources: bool,
}

/// The outcome of one page load.
#[derive(Debug, Clone, Default)]
pub struct LoadResult {
    /// From sending the request to the end of the last subresource (or of the page if none).
    pub elapsed: Duration,
    /// Subresources the page needed (not in the browser cache), in completion order.
    pub needed: Vec<String>,
    /// Of those, delivered by push.
    pub pushed_used: Vec<String>,
    /// Pushed streams the page did not need (already cached or not referenced).
    pub pushed_wasted: Vec<String>,
    /// Paths announced in a 103.
    pub hinted: Vec<String>,
    /// The digest cookie the server set, if any (`name=value`).
    pub cookie: Option<String>,
    pub bytes: u64,
}

/// Trusts exactly one certificate, compared byte for byte; signatures are still checked.
#[derive(Debug)]
struct Pinned {
    der: Vec<u8>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.der.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))
        }
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(m, c, d, algs)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(m, c, d, algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS client config (ALPN h2) whose verifier decides which server certificates to accept.
pub fn tls_with_verifier(
    verifier: impl FnOnce(Arc<rustls::crypto::CryptoProvider>) -> Arc<dyn ServerCertVerifier>,
) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier(provider))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(cfg)
}

/// A TLS client config that trusts exactly the certificate `der` (the demo's own server).
pub fn tls_trusting(der: &[u8]) -> Arc<rustls::ClientConfig> {
    let der = der.to_vec();
    tls_with_verifier(|provider| Arc::new(Pinned { der, provider }))
}

type Slot = watch::Receiver<Option<Bytes>>;

struct Inflight {
    slots: Mutex<HashMap<String, Slot>>,
    pushed: Mutex<HashSet<String>>,
    bytes: std::sync::atomic::AtomicU64,
}

/// Loads `path` like a browser with `cache` (paths it already has); adds what it fetched to it.
/// `referer` is the page navigated from (None: the visit enters the site here).
pub async fn load_page(
    cfg: &LoadConfig,
    tls: Arc<rustls::ClientConfig>,
    path: &str,
    referer: Option<&str>,
    cookie: Option<&str>,
    cache: &mut HashSet<String>,
) -> anyhow::Result<LoadResult> {
    let started = Instant::now();
    let (mut client, driver) = connect(cfg, tls).await?;
    let inflight = Arc::new(Inflight {
        slots: Mutex::new(HashMap::new()),
        pushed: Mutex::new(HashSet::new()),
        bytes: Default::default(),
    });
    let mut req = Request::get(format!("https://{}{path}", cfg.authority))
        .header(header::USER_AGENT, &cfg.user_agent);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    if let Some(r) = referer {
        req = req.header(header::REFERER, format!("https://{}{r}", cfg.authority));
    }
    let (mut resp_fut, _) = client.send_request(req.body(())?, true)?;
    let push_task = read_pushes(resp_fut.push_promises(), Arc::clone(&inflight));
    let page = Page {
        cfg,
        client: &client,
        inflight: &inflight,
        path,
    };
    let (resp, hinted) = page.final_response(&mut resp_fut, cache).await?;
    let set_cookie = resp
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(String::from);
    if !resp.status().is_success() {
        bail!("{path}: status {}", resp.status());
    }
    let html = read_body(resp.into_body()).await?;
    inflight
        .bytes
        .fetch_add(html.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let (needed, last) = page.subresources(&html, cache).await?;
    let elapsed = last - started;
    let pushed: HashSet<String> = inflight.pushed.lock().expect("lock").clone();
    let pushed_used: Vec<String> = needed
        .iter()
        .filter(|p| pushed.contains(*p))
        .cloned()
        .collect();
    let mut pushed_wasted: Vec<String> = pushed
        .iter()
        .filter(|p| !needed.contains(p))
        .cloned()
        .collect();
    pushed_wasted.sort();
    for p in &needed {
        cache.insert(p.clone());
    }
    push_task.abort();
    drop(client);
    driver.abort();
    Ok(LoadResult {
        elapsed,
        needed,
        pushed_used,
        pushed_wasted,
        hinted,
        cookie: set_cookie,
        bytes: inflight.bytes.load(std::sync::atomic::Ordering::Relaxed),
    })
}

/// A TLS + HTTP/2 connection with a browser's window sizes; the task driving it.
async fn connect(
    cfg: &LoadConfig,
    tls: Arc<rustls::ClientConfig>,
) -> anyhow::Result<(SendRequest<Bytes>, tokio::task::JoinHandle<()>)> {
    let tcp = TcpStream::connect(cfg.connect).await.context("connect")?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from("localhost").expect("static name");
    let tls_stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .context("TLS handshake")?;
    let (client, conn) = h2::client::Builder::new()
        .enable_push(cfg.push)
        .initial_window_size(6 * 1024 * 1024)
        .initial_connection_window_size(15 * 1024 * 1024)
        .handshake::<_, Bytes>(tls_stream)
        .await
        .context("h2 handshake")?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok((client.ready().await?, driver))
}

/// Registers each promise at once, then reads its body in the background.
fn read_pushes(
    mut promises: h2::client::PushPromises,
    inf: Arc<Inflight>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(p) = promises.push_promise().await {
            let Ok(p) = p else { break };
            let (preq, presp) = p.into_parts();
            let ppath = preq.uri().path().to_string();
            let (tx, rx) = watch::channel(None);
            inf.slots.lock().expect("lock").insert(ppath.clone(), rx);
            inf.pushed.lock().expect("lock").insert(ppath);
            let inf2 = Arc::clone(&inf);
            tokio::spawn(async move {
                if let Ok(r) = presp.await {
                    let body = read_body(r.into_body()).await.unwrap_or_default();
                    inf2.bytes
                        .fetch_add(body.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    let _ = tx.send(Some(body));
                }
            });
        }
    })
}

/// One page load in progress: its client, connection and what is in flight on it.
struct Page<'a> {
    cfg: &'a LoadConfig,
    client: &'a SendRequest<Bytes>,
    inflight: &'a Arc<Inflight>,
    path: &'a str,
}

impl Page<'_> {
    /// Waits for the final response, acting on any 103 Early Hints before it (when the config
    /// follows hints). Returns the response and the hinted paths.
    async fn final_response(
        &self,
        resp_fut: &mut h2::client::ResponseFuture,
        cache: &HashSet<String>,
    ) -> anyhow::Result<(http::Response<h2::RecvStream>, Vec<String>)> {
        let mut hinted = Vec::new();
        loop {
            let step = std::future::poll_fn(|cx| {
                if let std::task::Poll::Ready(Some(Ok(info))) = resp_fut.poll_informational(cx) {
                    return std::task::Poll::Ready(Err(info));
                }
                std::pin::Pin::new(&mut *resp_fut).poll(cx).map(Ok)
            })
            .await;
            match step {
                Err(info) => {
                    for l in info.headers().get_all(header::LINK) {
                        for target in link_targets(l) {
                            hinted.push(target.clone());
                            if self.cfg.follow_hints && !cache.contains(&target) {
                                ensure_started(
                                    self.inflight,
                                    self.client,
                                    self.cfg,
                                    self.path,
                                    &target,
                                );
                            }
                        }
                    }
                }
                Ok(r) => return Ok((r?, hinted)),
            }
        }
    }

    /// Fetches what the page references (HTML, then what its CSS references), using pushed and
    /// hinted fetches in flight. Returns the needed paths and when the last one arrived.
    async fn subresources(
        &self,
        html: &[u8],
        cache: &HashSet<String>,
    ) -> anyhow::Result<(Vec<String>, Instant)> {
        let mut last = Instant::now();
        // Promises precede the response headers on the wire; let the push task register them.
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
        let mut needed = Vec::new();
        let mut waiting = tokio::task::JoinSet::new();
        let mut seen = HashSet::new();
        let text = String::from_utf8_lossy(html);
        let refs = if self.cfg.subresources {
            html_refs(&text)
        } else {
            Vec::new()
        };
        let mut start = |from: &str, p: String, waiting: &mut tokio::task::JoinSet<_>| {
            if seen.insert(p.clone()) && !cache.contains(&p) {
                let slot = ensure_started(self.inflight, self.client, self.cfg, from, &p);
                waiting.spawn(wait(p, slot));
            }
        };
        for r in refs {
            start(self.path, resolve(self.path, &r), &mut waiting);
        }
        while let Some(done) = waiting.join_next().await {
            let (p, body) = done?;
            last = Instant::now();
            if p.ends_with(".css") {
                let css = String::from_utf8_lossy(&body);
                for r in css_refs(&css) {
                    start(&p, resolve(&p, &r), &mut waiting);
                }
            }
            needed.push(p);
        }
        Ok((needed, last))
    }
}

use std::future::Future as _;

fn link_targets(v: &HeaderValue) -> Vec<String> {
    v.to_str()
        .unwrap_or("")
        .split(',')
        .filter(|l| l.contains("preload"))
        .filter_map(|l| {
            let l = l.trim();
            let start = l.find('<')? + 1;
            let end = l.find('>')?;
            Some(l[start..end].to_string())
        })
        .collect()
}

/// The fetch of `path` (referenced by `from`): the one in flight (pushed, hinted) or a new one.
fn ensure_started(
    inf: &Arc<Inflight>,
    client: &SendRequest<Bytes>,
    cfg: &LoadConfig,
    from: &str,
    path: &str,
) -> Slot {
    let mut slots = inf.slots.lock().expect("lock");
    if let Some(s) = slots.get(path) {
        return s.clone();
    }
    let (tx, rx) = watch::channel(None);
    slots.insert(path.to_string(), rx.clone());
    drop(slots);
    let mut client = client.clone();
    let uri = format!("https://{}{path}", cfg.authority);
    let referer = format!("https://{}{from}", cfg.authority);
    let ua = cfg.user_agent.clone();
    let inf = Arc::clone(inf);
    tokio::spawn(async move {
        let body = async {
            client = client.ready().await.ok()?;
            let req = Request::get(uri)
                .header(header::USER_AGENT, ua)
                .header(header::REFERER, referer)
                .body(())
                .ok()?;
            let (fut, _) = client.send_request(req, true).ok()?;
            let resp = fut.await.ok()?;
            read_body(resp.into_body()).await.ok()
        }
        .await
        .unwrap_or_default();
        inf.bytes
            .fetch_add(body.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let _ = tx.send(Some(body));
    });
    rx
}

async fn wait(path: String, mut slot: Slot) -> (String, Bytes) {
    loop {
        if let Some(b) = slot.borrow().clone() {
            return (path, b);
        }
        if slot.changed().await.is_err() {
            return (path, Bytes::new());
        }
    }
}

async fn read_body(mut body: h2::RecvStream) -> anyhow::Result<Bytes> {
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

/// Median and 90th percentile of durations, in milliseconds.
pub fn median_p90(samples: &mut [Duration]) -> (f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0);
    }
    samples.sort();
    let at =
        |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0;
    (at(0.5), at(0.9))
}
