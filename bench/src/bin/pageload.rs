//! Loads pages like a browser through a delay proxy and prints median / p90 load times:
//! `pageload --server 127.0.0.1:8443 --rtt-ms 50 --runs 20 --page / --page /blog/ [--no-push] [--hints] [--repeat]`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use pushwise_bench::loader::{LoadConfig, load_page, median_p90, tls_with_verifier};
use pushwise_bench::proxy::DelayProxy;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

#[derive(Parser)]
struct Args {
    /// The server (host:port) to load from.
    #[arg(long)]
    server: SocketAddr,
    #[arg(long, default_value_t = 50)]
    rtt_ms: u64,
    #[arg(long, default_value_t = 20)]
    runs: usize,
    #[arg(long = "page", required = true)]
    pages: Vec<String>,
    /// Refuse server push (SETTINGS_ENABLE_PUSH=0).
    #[arg(long)]
    no_push: bool,
    /// Act on 103 Early Hints.
    #[arg(long)]
    hints: bool,
    /// Measure the second visit of each page (warm cache, digest cookie from the first).
    #[arg(long)]
    repeat: bool,
    /// A label for the output line.
    #[arg(long, default_value = "run")]
    label: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let proxy = DelayProxy::start(a.server, Duration::from_millis(a.rtt_ms)).await?;
    // The servers under test use throw-away self-signed certificates: accept any (bench only).
    let tls = tls_with_verifier(|provider| Arc::new(AcceptAny(provider)));
    let cfg = LoadConfig {
        connect: proxy.addr,
        authority: format!("localhost:{}", a.server.port()),
        push: !a.no_push,
        follow_hints: a.hints,
        user_agent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 pageload".into(),
        subresources: true,
    };
    let mut samples = Vec::new();
    let (mut used, mut wasted) = (0usize, 0usize);
    for i in 0..a.runs {
        for page in &a.pages {
            let mut cache = HashSet::new();
            let mut cookie = None;
            if a.repeat {
                let first = load_page(&cfg, tls.clone(), page, None, None, &mut cache).await?;
                cookie = first.cookie;
            }
            let r = load_page(&cfg, tls.clone(), page, None, cookie.as_deref(), &mut cache).await?;
            used += r.pushed_used.len();
            wasted += r.pushed_wasted.len();
            if i == 0 && std::env::var_os("PAGELOAD_VERBOSE").is_some() {
                eprintln!(
                    "{page}: {:?} needed={:?} pushed_used={:?} wasted={:?} hinted={:?}",
                    r.elapsed, r.needed, r.pushed_used, r.pushed_wasted, r.hinted
                );
            }
            samples.push(r.elapsed);
        }
    }
    let (med, p90) = median_p90(&mut samples);
    println!(
        "{}",
        serde_json::json!({"label": a.label, "median_ms": med, "p90_ms": p90, "loads": samples.len(), "pushed_used": used, "pushed_wasted": wasted})
    );
    Ok(())
}

/// Accepts any server certificate (signatures still checked): benchmarks against local
/// servers with throw-away certificates only. Never reachable from `pushwise`.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
