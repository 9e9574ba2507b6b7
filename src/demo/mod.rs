//! `pushwise demo`: serve the example site, drive realistic traffic, learn, print the push sets,
//! and measure page loads at an emulated RTT for no push, learned push (cold and repeat visits),
//! Early Hints only, and an oracle set.
//!
//! The demo's servers use a certificate the demo generates, and its client trusts exactly that
//! certificate: no verifier that accepts any certificate is reachable from the `pushwise` binary.

mod measure;
mod process;
mod report;
mod traffic;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use pushwise_analyzer::tune::{self, Objective, TunePoint};
use pushwise_analyzer::{LearnParams, PassReport, run_pass};
use pushwise_bench::loader::tls_trusting;
use pushwise_bench::proxy::DelayProxy;
use pushwise_bench::site::SiteMap;
use pushwise_store::time::now_ms;
use pushwise_store::{Context, PushSets, Store};

use crate::cli::DemoArgs;
use crate::output::bar;
use measure::Targets;
use process::{CertFiles, ServerProcess};
use report::{DemoReport, DemoSet};

/// The `:authority` the demo's clients send to a server on `addr` (the certificate's name).
fn authority(addr: SocketAddr) -> String {
    format!("localhost:{}", addr.port())
}

pub async fn run(a: DemoArgs) -> anyhow::Result<()> {
    let site = SiteMap::scan(&a.site).with_context(|| {
        format!(
            "cannot read the example site at {} (run from the repository root, or pass --site DIR)",
            a.site.display()
        )
    })?;
    if site.pages.is_empty() {
        bail!("no .html pages under {}", a.site.display());
    }
    let tmp = tempfile::Builder::new()
        .prefix("pushwise-demo-")
        .tempdir()?;
    let dir = tmp.path().to_path_buf();
    // Removed at the end (when `tmp` drops) unless --keep; --db puts the learned database where
    // the user wants it, kept whatever happens to the directory.
    let db = match &a.db {
        Some(db) if db.exists() => bail!(
            "demo --db {}: that file exists; the demo writes a fresh database (remove it or \
             choose another path)",
            db.display()
        ),
        Some(db) => db.clone(),
        None => dir.join("pushwise.db"),
    };
    // `_removed_at_end` deletes the directory when `run` returns (any way it returns).
    let (kept, _removed_at_end) = if a.keep {
        (Some(tmp.keep()), None)
    } else {
        (None, Some(tmp))
    };
    let (visits, runs) = if a.fast { (150, 3) } else { (500, 6) };
    let quiet = a.json;
    let cert = CertFiles::create(&dir)?;
    let tls = tls_trusting(&cert.der);

    // 1. Traffic: browsers (cold and warm caches, some refusing push), crawlers.
    let server = ServerProcess::start(&db, &a.site, &cert, &["--holdout", "0.05"])?;
    let pb = bar(visits as u64, "driving traffic", quiet);
    let page_views = traffic::drive(&site, server.addr, tls.clone(), visits, &pb).await?;
    pb.finish_and_clear();
    server.stop(); // drains the recorder

    // 2. Learn, let `tune` pick the threshold and minimum support for this much data, learn again.
    let store = Store::open(&db).await?;
    let (pass, tuned) = learn(&store, quiet).await?;
    let sets = browser_entry_sets(&store, &site).await?;

    // 3. An oracle: exactly what each page needs, in the order a browser discovers it.
    let oracle_db = dir.join("oracle.db");
    write_oracle(&oracle_db, &site).await?;

    // 4. Page loads at the emulated RTT.
    let learned_srv =
        ServerProcess::start(&db, &a.site, &cert, &["--holdout", "0", "--no-record"])?;
    let oracle_srv = ServerProcess::start(
        &oracle_db,
        &a.site,
        &cert,
        &["--holdout", "0", "--no-record"],
    )?;
    let rtt = Duration::from_millis(a.rtt_ms);
    let learned_proxy = DelayProxy::start(learned_srv.addr, rtt).await?;
    let oracle_proxy = DelayProxy::start(oracle_srv.addr, rtt).await?;
    let targets = Targets {
        learned: (learned_proxy.addr, learned_srv.addr),
        oracle: (oracle_proxy.addr, oracle_srv.addr),
    };
    let pb = bar(
        measure::load_count(&site, runs),
        "measuring page loads",
        quiet,
    );
    let results = measure::measure(&site, &targets, tls, runs, &pb).await?;
    pb.finish_and_clear();
    drop(learned_proxy);
    drop(oracle_proxy);
    learned_srv.stop();
    oracle_srv.stop();

    let r = DemoReport {
        database: (kept.is_some() || a.db.is_some()).then(|| db.clone()),
        directory: kept,
        rtt_ms: a.rtt_ms,
        visits,
        page_views,
        generation: pass.generation,
        sets,
        results,
    };
    let site_name = a.site.display().to_string();
    let loads = runs * site.pages.len();
    report::print(&r, a.json, &site_name, tuned.as_ref(), &store, loads).await?;
    store.close().await;
    Ok(())
}

/// A pass, `tune` on what it saw (its recommendation applied), and a second pass.
async fn learn(store: &Store, quiet: bool) -> anyhow::Result<(PassReport, Option<TunePoint>)> {
    let pb = bar(3, "learning", quiet);
    let lp = LearnParams::default();
    run_pass(store, &lp, now_ms()).await?;
    pb.inc(1);
    let tuned = tune::tune(store, &lp, Objective::F1, 0.7, tune::WINDOW_EVENTS).await?;
    if let Some(r) = &tuned.recommended {
        crate::commands::tune::apply(store, r).await?;
    }
    pb.inc(1);
    let pass = run_pass(store, &lp, now_ms()).await?;
    pb.inc(1);
    pb.finish_and_clear();
    Ok((pass, tuned.recommended))
}

/// What each page's view by a browser entering the site gets, as the server would decide it.
async fn browser_entry_sets(store: &Store, site: &SiteMap) -> anyhow::Result<Vec<DemoSet>> {
    let sets = PushSets::new();
    sets.reload_if_newer(store).await?;
    Ok(site
        .pages
        .iter()
        .map(|p| {
            let d = sets.decide(&p.path, Context::BrowserEntry);
            DemoSet {
                page: p.path.clone(),
                context: d.context,
                assets: d.assets.iter().map(|a| a.path.clone()).collect(),
            }
        })
        .collect())
}

/// A database whose one generation pushes every page's assets, in discovery order.
async fn write_oracle(db: &Path, site: &SiteMap) -> anyhow::Result<()> {
    let oracle = Store::open(db).await?;
    let g = site.oracle_generation();
    oracle.write_generation(&g).await?;
    oracle.close().await;
    Ok(())
}
