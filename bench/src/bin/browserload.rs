//! A real browser's page loads through pushwise: headless Chromium, cold cache, a delay proxy at
//! `--rtt-ms`, an upstream that thinks `--think-ms` before each HTML page. Three servers side by
//! side: no hints (`--push-mode off`), learned hints (sets learned from synthetic traffic of the
//! same site) and oracle hints (each page's exact assets). Reports the load event and the largest
//! contentful paint, median and p90 per page and configuration:
//! `browserload --pushwise target/release/pushwise --loads 10`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use pushwise_bench::browser::{SlowSite, TestCert, Timing, load, median_p90};
use pushwise_bench::proxy::DelayProxy;
use pushwise_bench::site::SiteMap;
use pushwise_bench::synth::{SynthConfig, combined_line, generate};

#[derive(Parser)]
struct Args {
    /// The pushwise binary to measure.
    #[arg(long)]
    pushwise: PathBuf,
    /// The site to serve (through a slow upstream).
    #[arg(long, default_value = "examples/site")]
    site: PathBuf,
    /// Loads per page and configuration, each in a fresh browser profile (a cold cache).
    #[arg(long, default_value_t = 10)]
    loads: usize,
    /// Emulated round-trip time between the browser and pushwise, milliseconds.
    #[arg(long, default_value_t = 50)]
    rtt_ms: u64,
    /// How long the upstream thinks before each HTML page, milliseconds.
    #[arg(long, default_value_t = 200)]
    think_ms: u64,
    /// The Chromium binary.
    #[arg(long, default_value = "chromium")]
    chromium: String,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

const CONFIGS: [&str; 3] = ["no hints", "learned hints", "oracle hints"];

/// A `pushwise serve` child; killed on drop.
struct Pushwise {
    child: Child,
    port: u16,
}

impl Drop for Pushwise {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(
    bin: &Path,
    db: &Path,
    upstream: u16,
    tls: &(PathBuf, PathBuf),
    extra: &[&str],
) -> anyhow::Result<Pushwise> {
    let mut child = Command::new(bin)
        .arg("--db")
        .arg(db)
        .args([
            "serve",
            "--upstream",
            &format!("http://127.0.0.1:{upstream}"),
        ])
        .args(["--listen", "127.0.0.1:0", "--no-record", "--holdout", "0"])
        .args(["--analyze-every", "0"])
        .arg("--tls-cert")
        .arg(&tls.0)
        .arg("--tls-key")
        .arg(&tls.1)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    let port = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("pushwise did not start: {line:?}"))?;
    Ok(Pushwise { child, port })
}

fn pushwise(bin: &Path, db: &Path, args: &[&str]) -> anyhow::Result<()> {
    let o = Command::new(bin).arg("--db").arg(db).args(args).output()?;
    if !o.status.success() {
        bail!(
            "pushwise {args:?}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let site = SiteMap::scan(&a.site)?;
    let work = std::env::temp_dir().join(format!("pushwise-browserload-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;

    // Learned sets: synthetic browser traffic of this site, imported and analyzed.
    let learned = work.join("learned.db");
    let log = work.join("access.log");
    {
        let cfg = SynthConfig {
            visits: 3_000,
            ..Default::default()
        };
        let mut f = std::io::BufWriter::new(std::fs::File::create(&log)?);
        for h in generate(&site, &cfg).0 {
            writeln!(f, "{}", combined_line(&h))?;
        }
        f.flush()?;
    }
    let log_arg = log.to_str().context("path")?;
    pushwise(
        &a.pushwise,
        &learned,
        &[
            "import",
            "--host",
            "example.com",
            "--host",
            "www.example.com",
            log_arg,
        ],
    )?;
    pushwise(&a.pushwise, &learned, &["analyze", "--once"])?;
    // Oracle sets: each page's exact assets, in discovery order.
    let oracle = work.join("oracle.db");
    {
        let store = pushwise_store::Store::open(&oracle).await?;
        store.write_generation(&site.oracle_generation()).await?;
        store.close().await;
    }

    let app = SlowSite::start(
        std::fs::canonicalize(&a.site)?,
        Duration::from_millis(a.think_ms),
    )?;
    let cert = TestCert::generate()?;
    let tls = cert.write(&work)?;
    let servers = [
        serve(
            &a.pushwise,
            &learned,
            app.port,
            &tls,
            &["--push-mode", "off"],
        )?,
        serve(
            &a.pushwise,
            &learned,
            app.port,
            &tls,
            &["--push-mode", "hints"],
        )?,
        serve(
            &a.pushwise,
            &oracle,
            app.port,
            &tls,
            &["--push-mode", "hints"],
        )?,
    ];
    let rtt = Duration::from_millis(a.rtt_ms);
    let mut proxies = Vec::new();
    for s in &servers {
        proxies.push(DelayProxy::start(([127, 0, 0, 1], s.port).into(), rtt).await?);
    }
    let ports: Vec<u16> = proxies.iter().map(|p| p.addr.port()).collect();

    // page → config → timings; configurations interleaved load by load, so drift hits all alike.
    let mut results: Vec<(String, [Vec<Timing>; 3])> = Vec::new();
    let total = site.pages.len() * a.loads * CONFIGS.len();
    let mut done = 0;
    for p in &site.pages {
        let mut per: [Vec<Timing>; 3] = Default::default();
        for _ in 0..a.loads {
            for (c, port) in ports.iter().enumerate() {
                let url = format!("https://localhost:{port}{}", p.path);
                let (chromium, app) = (a.chromium.clone(), &app);
                let t = tokio::task::block_in_place(|| {
                    load(&chromium, app, &url, &cert, Duration::from_secs(30))
                })?;
                per[c].push(t);
                done += 1;
                if done % (a.loads * CONFIGS.len()) == 0 {
                    eprintln!("{done}/{total} loads");
                }
            }
        }
        results.push((p.path.clone(), per));
    }
    eprintln!();
    drop(proxies);
    drop(servers);
    let _ = std::fs::remove_dir_all(&work);
    report(&a, &results)
}

fn report(a: &Args, results: &[(String, [Vec<Timing>; 3])]) -> anyhow::Result<()> {
    let stat =
        |ts: &[Timing], f: fn(&Timing) -> f64| median_p90(&ts.iter().map(f).collect::<Vec<_>>());
    if a.json {
        let rows: Vec<_> = results
            .iter()
            .map(|(page, per)| {
                let configs: serde_json::Map<String, serde_json::Value> = CONFIGS
                    .iter()
                    .zip(per)
                    .map(|(c, ts)| {
                        let (lm, lp) = stat(ts, |t| t.load_ms);
                        let (pm, pp) = stat(ts, |t| t.lcp_ms);
                        let (fm, _) = stat(ts, |t| t.fcp_ms);
                        let (rm, _) = stat(ts, |t| t.response_ms);
                        let images = ts.iter().filter(|t| t.lcp_image).count();
                        (
                            c.to_string(),
                            serde_json::json!({"load_median_ms": lm, "load_p90_ms": lp,
                                               "lcp_median_ms": pm, "lcp_p90_ms": pp,
                                               "fcp_median_ms": fm, "response_median_ms": rm,
                                               "lcp_image_loads": images, "loads": ts.len()}),
                        )
                    })
                    .collect();
                serde_json::json!({"page": page, "configs": configs})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "headless Chromium, cold cache, {} ms RTT, upstream thinks {} ms per page, {} loads per \
         page and configuration\n",
        a.rtt_ms, a.think_ms, a.loads
    );
    println!(
        "{:<22} {:>22} {:>22} {:>22}",
        "page (load | LCP, ms)", CONFIGS[0], CONFIGS[1], CONFIGS[2]
    );
    // Per configuration: load, LCP, FCP, HTML first byte (sums of the pages' medians), and how
    // many loads' LCP element was an image.
    let mut sums = [[0.0f64; 4]; 3];
    let mut images = [(0usize, 0usize); 3];
    for (page, per) in results {
        let mut cells = Vec::new();
        for (c, ts) in per.iter().enumerate() {
            let (lm, lp) = stat(ts, |t| t.load_ms);
            let (pm, _) = stat(ts, |t| t.lcp_ms);
            sums[c][0] += lm;
            sums[c][1] += pm;
            sums[c][2] += stat(ts, |t| t.fcp_ms).0;
            sums[c][3] += stat(ts, |t| t.response_ms).0;
            images[c].0 += ts.iter().filter(|t| t.lcp_image).count();
            images[c].1 += ts.len();
            cells.push(format!("{lm:.0} (p90 {lp:.0}) | {pm:.0}"));
        }
        println!(
            "{page:<22} {:>22} {:>22} {:>22}",
            cells[0], cells[1], cells[2]
        );
    }
    let n = results.len().max(1) as f64;
    let mean = |c: usize, k: usize| sums[c][k] / n;
    println!(
        "\nmean of the pages' medians, load: no hints {:.0}, learned {:.0}, oracle {:.0} ms; LCP: \
         {:.0}, {:.0}, {:.0} ms",
        mean(0, 0),
        mean(1, 0),
        mean(2, 0),
        mean(0, 1),
        mean(1, 1),
        mean(2, 1)
    );
    println!(
        "first contentful paint: {:.0}, {:.0}, {:.0} ms; the HTML's first byte: {:.0}, {:.0}, \
         {:.0} ms; LCP element an image in {}/{}, {}/{}, {}/{} loads",
        mean(0, 2),
        mean(1, 2),
        mean(2, 2),
        mean(0, 3),
        mean(1, 3),
        mean(2, 3),
        images[0].0,
        images[0].1,
        images[1].0,
        images[1].1,
        images[2].0,
        images[2].1
    );
    println!(
        "learned vs oracle (load): {:+.1}%; no hints − learned: {:.0} ms = {:.1} RTT",
        (mean(1, 0) / mean(2, 0) - 1.0) * 100.0,
        mean(0, 0) - mean(1, 0),
        (mean(0, 0) - mean(1, 0)) / a.rtt_ms as f64
    );
    Ok(())
}
