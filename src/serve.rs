//! `pushwise serve`: builds the validated server configuration and runs the server with its
//! background tasks (recorder, analyzer, push-set reloader, retention, metrics listener).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use pushwise_analyzer::plan::PushSets;
use pushwise_analyzer::{ClientKeyer, Store, learn};
use pushwise_server::metrics::Metrics;
use pushwise_server::origin::{Origin, files::StaticFiles, upstream::Upstream};
use pushwise_server::recorder::{Recorder, RecorderConfig};
use pushwise_server::{Config, PushMode, Shared, tls};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cli::{PushModeArg, ServeArgs};

/// Validates flags into the server's configuration (errors name the flag).
fn config(a: &ServeArgs) -> anyhow::Result<Config> {
    if !(0.0..=1.0).contains(&a.holdout) {
        bail!("--holdout must be between 0 and 1, got {}", a.holdout);
    }
    if a.batch_size == 0 || a.queue_size == 0 {
        bail!("--batch-size and --queue-size must be at least 1");
    }
    if a.max_concurrent_streams == 0 {
        bail!("--max-concurrent-streams must be at least 1");
    }
    if a.digest_cookie.is_empty()
        || !a
            .digest_cookie
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        bail!("--digest-cookie must be a plain cookie name (letters, digits, _ and -)");
    }
    if a.early_hints_h1 {
        tracing::warn!(
            "--early-hints-h1: the HTTP/1.1 stack cannot send 103 yet; HTTP/1.1 page views get Link headers on the final response"
        );
    }
    Ok(Config {
        hosts: a.hosts.clone(),
        keep_query: a.keep_query,
        push_mode: match a.push_mode {
            PushModeArg::Push => PushMode::Push,
            PushModeArg::Hints => PushMode::Hints,
            PushModeArg::Off => PushMode::Off,
        },
        holdout: a.holdout,
        early_hints_h1: a.early_hints_h1,
        digest_cookie: a.digest_cookie.clone(),
        digest_max_age: max_age(&a.cache_control_assets).unwrap_or(3600),
        push_budget_bytes: a.push_budget_bytes,
        max_concurrent_streams: a.max_concurrent_streams,
        idle_timeout: Duration::from_secs(a.idle_timeout.max(1)),
        shutdown_grace: Duration::from_secs(a.shutdown_grace),
        access_log: a.access_log,
        ..Config::default()
    })
}

/// The `max-age` of a Cache-Control value: the digest cookie must not outlive the assets' freshness.
fn max_age(cc: &str) -> Option<u64> {
    cc.split(',')
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .find_map(|v| v.trim().parse().ok())
}

/// Opens the database for serving: read-write if possible; read-only if the file exists but
/// cannot be written (the server keeps serving and counts failed batches); else an error.
async fn open_for_serving(db: &Path) -> anyhow::Result<Store> {
    match Store::open(db).await {
        Ok(s) => Ok(s),
        Err(e) if db.exists() => {
            tracing::error!(error = %e, db = %db.display(),
                "database is not writable: serving anyway, recording will fail until it is");
            Store::open_read_only(db)
                .await
                .with_context(|| format!("cannot open the database {} at all", db.display()))
        }
        Err(e) => Err(e).with_context(|| format!("cannot create the database {}", db.display())),
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested");
}

pub async fn serve(db: &Path, a: ServeArgs) -> anyhow::Result<()> {
    let cfg = config(&a)?;
    let learn_params = a.learn.params()?;
    let origin = match (&a.root, &a.upstream) {
        (Some(root), None) => Origin::Files(
            StaticFiles::new(root, &a.cache_control_pages, &a.cache_control_assets)
                .with_context(|| format!("--root {}", root.display()))?,
        ),
        (None, Some(up)) => {
            let uri = up
                .parse()
                .with_context(|| format!("--upstream {up:?} is not a URL"))?;
            Origin::Upstream(
                Upstream::new(uri, Duration::from_secs(30)).map_err(anyhow::Error::msg)?,
            )
        }
        _ => bail!("give exactly one of --root DIR or --upstream URL"),
    };
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => tls::from_pem_files(c, k)?,
        _ => {
            tracing::info!(
                "no --tls-cert/--tls-key: using a generated self-signed certificate for localhost"
            );
            tls::self_signed()?
        }
    };
    let store = open_for_serving(db).await?;
    let keyer = ClientKeyer::new(match store.salt().await {
        Ok(s) => s,
        Err(e) => {
            // A read-only database without a salt yet: keys are still hashed, with a per-process salt.
            tracing::warn!(error = %e, "no stored client salt; using a temporary one");
            let mut s = [0u8; 32];
            getrandom::fill(&mut s).context("no OS randomness for a client salt")?;
            s
        }
    });
    let metrics = Arc::new(Metrics::new());
    let sets = Arc::new(PushSets::new());
    if let Err(e) = sets.reload_if_newer(&store).await {
        tracing::warn!(error = %e, "could not load push sets at start");
    }
    metrics.generation.set(sets.generation());
    metrics.set_assets.set(sets.asset_count() as i64);
    metrics.analyzer_pages.set(sets.page_count() as i64);
    let (recorder, recorder_task) = if a.no_record {
        (None, None)
    } else {
        let (r, t) = Recorder::start(
            store.clone(),
            RecorderConfig {
                queue: a.queue_size,
                batch: a.batch_size,
                interval: Duration::from_millis(a.batch_interval_ms.max(1)),
                nice: a.recorder_nice,
                ..Default::default()
            },
            Arc::clone(&metrics),
        )
        .context("cannot start the recorder")?;
        (Some(r), Some(t))
    };
    let listener = TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("cannot listen on {}", a.listen))?;
    let local = listener.local_addr()?;
    let shared = Arc::new(Shared::new(
        cfg,
        origin,
        recorder,
        keyer,
        Arc::clone(&sets),
        Arc::clone(&metrics),
        tls,
    ));

    let bg = CancellationToken::new();
    let mut tasks = Vec::new();
    let mut metrics_line = None;
    if let Some(addr) = a.metrics_listen {
        let l = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on --metrics-listen {addr}"))?;
        metrics_line = Some(format!("metrics on http://{}/metrics", l.local_addr()?));
        let m = Arc::clone(&metrics);
        let stop = bg.clone();
        tasks.push(tokio::spawn(async move {
            pushwise_server::metrics::serve(l, m, stop.cancelled_owned()).await
        }));
    }
    tasks.push(tokio::spawn(reload_loop(
        store.clone(),
        Arc::clone(&sets),
        Arc::clone(&metrics),
        Duration::from_millis(a.reload_every_ms.max(50)),
        bg.clone(),
    )));
    if a.analyze_every > 0 && !store.is_read_only() {
        tasks.push(tokio::spawn(analyze_loop(
            store.clone(),
            learn_params,
            Arc::clone(&metrics),
            Duration::from_secs(a.analyze_every),
            bg.clone(),
        )));
    }
    if !store.is_read_only() {
        tasks.push(tokio::spawn(retention_loop(
            store.clone(),
            a.retention_days,
            bg.clone(),
        )));
    }

    tracing::info!(%local, db = %db.display(), "pushwise serving");
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on https://{local}")?;
        if let Some(m) = &metrics_line {
            writeln!(out, "{m}")?;
        }
        out.flush()?;
    }
    pushwise_server::run(listener, Arc::clone(&shared), shutdown_signal()).await;
    bg.cancel();
    for t in tasks {
        let _ = t.await;
    }
    drop(shared);
    if let Some(t) = recorder_task {
        t.drain().await;
        tracing::info!(
            written = metrics.recorder_written.get(),
            dropped = metrics.recorder_dropped.get(),
            "recorder drained"
        );
    }
    store.close().await;
    Ok(())
}

/// Polls the generation number cheaply and swaps in newer push sets; never on the request path.
async fn reload_loop(
    store: Store,
    sets: Arc<PushSets>,
    metrics: Arc<Metrics>,
    every: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        match sets.reload_if_newer(&store).await {
            Ok(true) => {
                metrics.generation.set(sets.generation());
                metrics.set_assets.set(sets.asset_count() as i64);
                metrics.analyzer_pages.set(sets.page_count() as i64);
                tracing::info!(
                    generation = sets.generation(),
                    pages = sets.page_count(),
                    "loaded push sets"
                );
            }
            Ok(false) => {}
            Err(e) => {
                tracing::debug!(error = %e, "push-set reload failed; keeping the current sets")
            }
        }
    }
}

async fn analyze_loop(
    store: Store,
    lp: learn::LearnParams,
    metrics: Arc<Metrics>,
    every: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let now = now_ms();
        match learn::run_pass(&store, &lp, now).await {
            Ok(r) => {
                metrics.analyzer_runs.inc();
                metrics
                    .analyzer_duration
                    .observe(r.duration_ms as f64 / 1000.0);
                metrics.analyzer_pages.set(r.pages as i64);
                metrics.set_assets.set(r.assets_in_sets as i64);
                tracing::info!(
                    generation = r.generation,
                    views = r.views,
                    pages = r.pages,
                    sets = r.pages_with_sets,
                    ms = r.duration_ms,
                    "analyzer pass"
                );
            }
            Err(e) => {
                metrics.analyzer_failures.inc();
                tracing::warn!(error = %e, "analyzer pass failed");
            }
        }
    }
}

async fn retention_loop(store: Store, days: u32, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let cutoff = now_ms() - i64::from(days) * 86_400_000;
        match store.prune_events_before(cutoff).await {
            Ok(n) if n > 0 => tracing::info!(deleted = n, days, "retention: pruned old events"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention prune failed"),
        }
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
