//! `pushwise demo`: serve the example site, drive realistic traffic, learn, print the push sets,
//! and measure page loads at an emulated RTT for no push, learned push (cold and repeat visits),
//! Early Hints only, and an oracle set.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use pushwise_analyzer::Store;
use pushwise_analyzer::learn::{self, LearnParams};
use pushwise_analyzer::store::{NewGeneration, PageStat, SetRow};
use pushwise_bench::loader::{LoadConfig, insecure_tls, load_page, median_p90};
use pushwise_bench::proxy::DelayProxy;
use pushwise_bench::site::SiteMap;
use pushwise_bench::synth::BROWSER_UAS;
use serde::Serialize;

use crate::cli::{DemoArgs, SetsCmd};

/// A `pushwise serve` child process, stopped with SIGTERM when dropped.
struct ServerProcess {
    child: Child,
    addr: SocketAddr,
}

impl ServerProcess {
    fn start(db: &Path, site: &Path, extra: &[&str]) -> anyhow::Result<ServerProcess> {
        let exe = std::env::current_exe().context("finding the pushwise binary")?;
        let mut child = Command::new(exe)
            .arg("--db")
            .arg(db)
            .arg("serve")
            .arg("--root")
            .arg(site)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--analyze-every",
                "0",
                "--reload-every-ms",
                "200",
            ])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the demo server")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("server stdout")?).read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("listening on https://")
            .with_context(|| format!("the demo server did not start: {line:?}"))?
            .parse()?;
        Ok(ServerProcess { child, addr })
    }

    fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..200 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

#[derive(Serialize, Clone)]
struct Measured {
    config: &'static str,
    median_ms: f64,
    p90_ms: f64,
    loads: usize,
    pushed_used: usize,
    pushed_wasted: usize,
    speedup_vs_no_push: f64,
}

#[derive(Serialize)]
struct DemoReport {
    database: PathBuf,
    rtt_ms: u64,
    visits: usize,
    page_views: usize,
    generation: i64,
    sets: Vec<DemoSet>,
    results: Vec<Measured>,
}

#[derive(Serialize)]
struct DemoSet {
    page: String,
    context: &'static str,
    assets: Vec<String>,
}

fn bar(len: u64, msg: &'static str, quiet: bool) -> indicatif::ProgressBar {
    let b = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(len)
    };
    b.set_style(
        indicatif::ProgressStyle::with_template("{msg:>24} [{bar:40}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    b.set_message(msg);
    b
}

pub async fn demo(a: DemoArgs) -> anyhow::Result<()> {
    let site = SiteMap::scan(&a.site).with_context(|| {
        format!(
            "cannot read the example site at {} (run from the repository root, or pass --site DIR)",
            a.site.display()
        )
    })?;
    if site.pages.is_empty() {
        bail!("no .html pages under {}", a.site.display());
    }
    let dir = tempfile::Builder::new()
        .prefix("pushwise-demo-")
        .tempdir()?
        .keep();
    let db = dir.join("pushwise.db");
    let (visits, runs) = if a.fast { (150, 3) } else { (500, 6) };
    let quiet = a.json;

    // 1. Traffic: browsers (cold and warm caches, some refusing push), crawlers; learn as we go.
    let server = ServerProcess::start(&db, &a.site, &["--holdout", "0.05"])?;
    let tls = insecure_tls();
    let pb = bar(visits as u64, "driving traffic", quiet);
    let mut page_views = 0usize;
    let mut rng = fastrand::Rng::with_seed(42);
    let mut plans = Vec::new();
    for v in 0..visits {
        let bot = rng.f64() < 0.2;
        let returning = !bot && rng.f64() < 0.3;
        let push = rng.f64() < 0.6;
        let n = if bot { 1 } else { 1 + rng.usize(0..4) };
        let mut pages = Vec::new();
        for i in 0..n {
            let p = if i == 0 && rng.f64() < 0.4 {
                &site.pages[0]
            } else {
                &site.pages[rng.usize(0..site.pages.len())]
            };
            pages.push(p.path.clone());
        }
        plans.push((v, bot, returning, push, pages));
    }
    let authority = |addr: SocketAddr| format!("localhost:{}", addr.port());
    let all_assets: HashSet<String> = site.pages.iter().flat_map(|p| p.all_assets()).collect();
    let sem = Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = tokio::task::JoinSet::new();
    for (v, bot, returning, push, pages) in plans {
        page_views += pages.len();
        let cfg = LoadConfig {
            connect: server.addr,
            authority: authority(server.addr),
            push,
            follow_hints: !push,
            user_agent: if bot {
                "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
                    .to_string()
            } else {
                format!("{} demo-visitor/{v}", BROWSER_UAS[v % BROWSER_UAS.len()])
            },
            subresources: !bot,
        };
        let tls = tls.clone();
        let sem = Arc::clone(&sem);
        let mut cache: HashSet<String> = if returning {
            all_assets.clone()
        } else {
            HashSet::new()
        };
        let pb = pb.clone();
        tasks.spawn(async move {
            let _permit = sem.acquire().await;
            let mut cookie = None;
            let mut prev: Option<String> = None;
            for p in &pages {
                let r = load_page(
                    &cfg,
                    tls.clone(),
                    p,
                    prev.as_deref(),
                    cookie.as_deref(),
                    &mut cache,
                )
                .await?;
                cookie = r.cookie.or(cookie);
                prev = Some(p.clone());
            }
            pb.inc(1);
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    pb.finish_and_clear();
    server.stop(); // drains the recorder

    let store = Store::open(&db).await?;
    // Learn, let `tune` pick the threshold and minimum support for this much data, learn again.
    let pb = bar(3, "learning", quiet);
    let lp = LearnParams::default();
    learn::run_pass(&store, &lp, crate::serve::now_ms()).await?;
    pb.inc(1);
    let tuned =
        pushwise_analyzer::tune::tune(&store, &lp, pushwise_analyzer::tune::Objective::F1, 0.7)
            .await?;
    if let Some(r) = &tuned.recommended {
        store
            .set_threshold(None, Some(r.threshold), Some(r.min_support))
            .await?;
    }
    pb.inc(1);
    let report = learn::run_pass(&store, &lp, crate::serve::now_ms()).await?;
    pb.inc(1);
    pb.finish_and_clear();
    let sets = pushwise_analyzer::plan::PushSets::new();
    sets.reload_if_newer(&store).await?;
    let browser = pushwise_analyzer::event::Context {
        browser: true,
        entry: true,
    };
    let learned: Vec<DemoSet> = site
        .pages
        .iter()
        .map(|p| {
            let d = sets.decide(&p.path, browser);
            DemoSet {
                page: p.path.clone(),
                context: d.context,
                assets: d.assets.iter().map(|a| a.path.clone()).collect(),
            }
        })
        .collect();

    // 2. An oracle: exactly what each page needs, in the order a browser discovers it.
    let oracle_db = dir.join("oracle.db");
    let oracle = Store::open(&oracle_db).await?;
    let mut g = NewGeneration {
        created_ms: 1,
        ..Default::default()
    };
    for p in &site.pages {
        g.pages.push(PageStat {
            page: p.path.clone(),
            context: "*".into(),
            views: 1,
            weighted: 1.0,
            uses_own: true,
        });
        for (i, asset) in p.all_assets().into_iter().enumerate() {
            g.assets.push(SetRow {
                page: p.path.clone(),
                context: "*".into(),
                as_type: pushwise_analyzer::event::as_type(&asset).into(),
                bytes: site.size(&asset) as i64,
                asset,
                probability: 1.0,
                support: 1,
                delay_ms: i as i64,
                in_set: true,
                position: i as i64,
                reason: "pinned".into(),
            });
        }
    }
    oracle.write_generation(&g).await?;
    oracle.close().await;

    // 3. Page loads at the emulated RTT.
    let learned_srv = ServerProcess::start(&db, &a.site, &["--holdout", "0", "--no-record"])?;
    let oracle_srv = ServerProcess::start(&oracle_db, &a.site, &["--holdout", "0", "--no-record"])?;
    let rtt = Duration::from_millis(a.rtt_ms);
    let learned_proxy = DelayProxy::start(learned_srv.addr, rtt).await?;
    let oracle_proxy = DelayProxy::start(oracle_srv.addr, rtt).await?;
    struct Case {
        name: &'static str,
        proxy: SocketAddr,
        server: SocketAddr,
        push: bool,
        hints: bool,
        repeat: bool,
    }
    let cases = [
        Case {
            name: "no push",
            proxy: learned_proxy.addr,
            server: learned_srv.addr,
            push: false,
            hints: false,
            repeat: false,
        },
        Case {
            name: "learned push",
            proxy: learned_proxy.addr,
            server: learned_srv.addr,
            push: true,
            hints: false,
            repeat: false,
        },
        Case {
            name: "Early Hints only",
            proxy: learned_proxy.addr,
            server: learned_srv.addr,
            push: false,
            hints: true,
            repeat: false,
        },
        Case {
            name: "oracle push",
            proxy: oracle_proxy.addr,
            server: oracle_srv.addr,
            push: true,
            hints: false,
            repeat: false,
        },
        Case {
            name: "no push, repeat visit",
            proxy: learned_proxy.addr,
            server: learned_srv.addr,
            push: false,
            hints: false,
            repeat: true,
        },
        Case {
            name: "learned push + digest, repeat visit",
            proxy: learned_proxy.addr,
            server: learned_srv.addr,
            push: true,
            hints: false,
            repeat: true,
        },
    ];
    let pb = bar(
        (cases.len() * runs * site.pages.len()) as u64,
        "measuring page loads",
        quiet,
    );
    let mut results: Vec<Measured> = Vec::new();
    for c in &cases {
        let cfg = LoadConfig {
            connect: c.proxy,
            authority: authority(c.server),
            push: c.push,
            follow_hints: c.hints,
            user_agent: format!("{} demo-measure", BROWSER_UAS[0]),
            subresources: true,
        };
        let mut samples = Vec::new();
        let (mut used, mut wasted) = (0, 0);
        for _ in 0..runs {
            for p in &site.pages {
                let mut cache = HashSet::new();
                let mut cookie = None;
                if c.repeat {
                    let first =
                        load_page(&cfg, tls.clone(), &p.path, None, None, &mut cache).await?;
                    cookie = first.cookie;
                }
                let r = load_page(
                    &cfg,
                    tls.clone(),
                    &p.path,
                    None,
                    cookie.as_deref(),
                    &mut cache,
                )
                .await?;
                used += r.pushed_used.len();
                wasted += r.pushed_wasted.len();
                samples.push(r.elapsed);
                pb.inc(1);
            }
        }
        let (median_ms, p90_ms) = median_p90(&mut samples);
        results.push(Measured {
            config: c.name,
            median_ms,
            p90_ms,
            loads: samples.len(),
            pushed_used: used,
            pushed_wasted: wasted,
            speedup_vs_no_push: 0.0,
        });
    }
    pb.finish_and_clear();
    drop(learned_proxy);
    drop(oracle_proxy);
    learned_srv.stop();
    oracle_srv.stop();
    let base = results[0].median_ms;
    let base_repeat = results[4].median_ms;
    for (i, r) in results.iter_mut().enumerate() {
        let b = if i >= 4 { base_repeat } else { base };
        r.speedup_vs_no_push = if r.median_ms > 0.0 {
            b / r.median_ms
        } else {
            0.0
        };
    }
    store.close().await;

    let out = DemoReport {
        database: db.clone(),
        rtt_ms: a.rtt_ms,
        visits,
        page_views,
        generation: report.generation,
        sets: learned,
        results: results.clone(),
    };
    if a.json {
        let mut o = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut o, &out)?;
        writeln!(o)?;
        return Ok(());
    }
    {
        let mut o = std::io::stdout().lock();
        writeln!(
            o,
            "pushwise demo: {visits} visits ({page_views} page views) to {}, learned generation {}\n",
            a.site.display(),
            report.generation
        )?;
        if let Some(r) = &tuned.recommended {
            writeln!(
                o,
                "tune recommended threshold {:.2}, minimum support {} (precision {:.2}, recall {:.2} on the newer 30%); applied\n",
                r.threshold, r.min_support, r.precision, r.recall
            )?;
        }
        writeln!(o, "learned push sets (sets list):")?;
    }
    crate::inspect::sets(&db, SetsCmd::List { json: false }).await?;
    let mut o = std::io::stdout().lock();
    writeln!(
        o,
        "\nwhat a browser entering the site gets pushed (plan --page P):"
    )?;
    for s in &out.sets {
        writeln!(
            o,
            "  {:<20} {}",
            s.page,
            if s.assets.is_empty() {
                "(nothing)".to_string()
            } else {
                s.assets.join(" ")
            }
        )?;
    }
    writeln!(
        o,
        "\npage loads through a delay proxy at {} ms RTT ({} loads each, browser-like loader):",
        a.rtt_ms,
        runs * site.pages.len()
    )?;
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_header([
        "configuration",
        "median ms",
        "p90 ms",
        "speed-up vs no push",
        "pushes used",
        "pushes wasted",
    ]);
    for r in &results {
        t.add_row(vec![
            r.config.to_string(),
            format!("{:.1}", r.median_ms),
            format!("{:.1}", r.p90_ms),
            format!("{:.2}x", r.speedup_vs_no_push),
            r.pushed_used.to_string(),
            r.pushed_wasted.to_string(),
        ]);
    }
    writeln!(o, "{t}")?;
    writeln!(
        o,
        "learned push vs no push: {:.1} ms faster at the median ({:.2}x)",
        results[0].median_ms - results[1].median_ms,
        results[1].speedup_vs_no_push
    )?;
    // Name the binary the way the user can type it (relative when it lives under the cwd).
    let exe = std::env::current_exe()
        .ok()
        .and_then(|e| {
            let cwd = std::env::current_dir().ok()?;
            e.strip_prefix(&cwd)
                .ok()
                .map(|r| format!("./{}", r.display()))
        })
        .unwrap_or_else(|| "pushwise".to_string());
    writeln!(
        o,
        "\nthe database is kept at {}; explore it with:",
        db.display()
    )?;
    for cmd in [
        "sets list",
        "sets show /",
        "tune --plot tune.svg",
        "plan --page / --user-agent 'Mozilla/5.0 Chrome/120'",
    ] {
        writeln!(o, "  {exe} --db {} {cmd}", db.display())?;
    }
    Ok(())
}
