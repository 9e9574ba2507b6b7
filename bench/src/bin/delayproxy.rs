//! Runs the delay proxy on its own: `delayproxy --upstream 127.0.0.1:8443 --rtt-ms 50` prints
//! `proxy on 127.0.0.1:PORT` and forwards until killed (for nghttp and other external clients).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    upstream: SocketAddr,
    #[arg(long, default_value_t = 50)]
    rtt_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let p = pushwise_bench::proxy::DelayProxy::start(a.upstream, Duration::from_millis(a.rtt_ms))
        .await?;
    println!("proxy on {}", p.addr);
    tokio::signal::ctrl_c().await?;
    Ok(())
}
