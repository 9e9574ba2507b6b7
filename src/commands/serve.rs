//! `pushwise serve`: turns the validated flags into the server's settings, opens the store, binds
//! the listeners, and runs the server with the periodic analyzer beside it.
//!
//! This is the one place the server and the analyzer meet: the server crate does not depend on
//! the analyzer, so the background learning pass is composed here.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use pushwise_analyzer::{LearnParams, run_pass};
use pushwise_server::access_log::AccessLogTarget;
use pushwise_server::metrics::Metrics;
use pushwise_server::origin::{Origin, files::StaticFiles, upstream::Upstream};
use pushwise_server::recorder::RecorderConfig;
use pushwise_server::{Config, PushMode, Server, Settings, tls};
use pushwise_store::Store;
use pushwise_store::time::now_ms;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cli::{PushModeArg, ServeArgs};
use crate::signal::shutdown_signal;

/// The request path's configuration from the flags (each already validated by its parser).
fn config(a: &ServeArgs) -> anyhow::Result<Config> {
    if a.early_hints_h1 {
        tracing::warn!(
            "--early-hints-h1: the HTTP/1.1 stack cannot send 103 yet; HTTP/1.1 page views get Link headers on the final response"
        );
    }
    Ok(Config {
        hosts: site_hosts(a)?,
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
        idle_timeout: a.idle_timeout,
        shutdown_grace: a.shutdown_grace,
        access_log: a.access_log.is_some(),
        max_connections: a.limits.max_connections,
        workers: a
            .workers
            .map_or_else(pushwise_server::config::default_workers, |n| n as usize),
        max_streams: a.limits.max_streams,
        max_request_body: a.limits.max_request_body,
        request_body_timeout: a.limits.request_body_timeout,
        send_timeout: a.limits.send_timeout,
        handshake_timeout: a.limits.handshake_timeout,
        max_pending_resets: a.limits.max_pending_resets,
        trusted_proxies: a.trusted_proxies.clone(),
        prefix_cap: a.prefix_cap,
        ..Config::default()
    })
}

/// The `max-age` of a Cache-Control value: the digest cookie must not outlive the assets' freshness.
fn max_age(cc: &str) -> Option<u64> {
    cc.split(',')
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .find_map(|v| v.trim().parse().ok())
}

fn origin(a: &ServeArgs) -> anyhow::Result<Origin> {
    Ok(match (&a.root, &a.upstream) {
        (Some(root), None) => Origin::Files(
            StaticFiles::new(root, &a.cache_control_pages, &a.cache_control_assets)
                .with_context(|| format!("--root {}", root.display()))?
                .serve_dotfiles(a.serve_dotfiles),
        ),
        (None, Some(up)) => {
            let uri = up
                .parse()
                .with_context(|| format!("--upstream {up:?} is not a URL"))?;
            Origin::Upstream(Upstream::new(
                uri,
                a.limits.upstream_timeout,
                a.limits.upstream_max_connections,
            )?)
        }
        _ => bail!("give exactly one of --root DIR or --upstream URL"),
    })
}

fn tls_config(a: &ServeArgs) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    Ok(match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => tls::from_pem_files(c, k)?,
        _ => {
            tracing::info!(
                "no --tls-cert/--tls-key: using a generated self-signed certificate for localhost"
            );
            tls::self_signed()?
        }
    })
}

/// The host names pushed to, hinted and learned from: `--host`, or else every name the
/// certificate covers (a request for any other name is served but teaches and receives nothing).
fn site_hosts(a: &ServeArgs) -> anyhow::Result<Vec<String>> {
    if !a.hosts.is_empty() {
        return Ok(a.hosts.clone());
    }
    let names = match &a.tls_cert {
        Some(c) => tls::names_in_pem_file(c)?,
        None => tls::SELF_SIGNED_NAMES.map(String::from).to_vec(),
    };
    if names.is_empty() {
        tracing::warn!(
            "the certificate names no host (no subjectAltName): sets go to any Host; set --host"
        );
    } else {
        tracing::info!(hosts = %names.join(","), "sets only for the certificate's names (change with --host)");
    }
    Ok(names)
}

/// Opens the database for serving, after the listeners are bound (a start that fails on its port
/// leaves no database behind). Read-write, creating it if missing; with `--read-only-db`, an
/// existing pushwise database read-only. A database that cannot be written is refused with its
/// reason: serving without recording is a choice the operator makes with `--read-only-db`.
async fn open_for_serving(db: &Path, read_only: bool) -> anyhow::Result<Store> {
    let loc = crate::open::location(db)?;
    if read_only {
        return Store::open_following(db)
            .await
            .with_context(|| format!("--read-only-db: cannot read the database {loc}"));
    }
    let existed = loc.is_postgres() || db.exists();
    match Store::open_at(&loc).await {
        Ok(s) => Ok(s),
        Err(e) if e.is_foreign() => Err(e.into()),
        Err(e) if existed => Err(anyhow::Error::new(e).context(format!(
            "cannot open the database {loc} for recording (to serve from a database this process \
             may only read, without recording or learning, pass --read-only-db)"
        ))),
        Err(e) => Err(e).with_context(|| format!("cannot create the database {loc}")),
    }
}

pub async fn run(db: &Path, a: ServeArgs) -> anyhow::Result<()> {
    let learn_params = a.learn.params();
    let mut settings = Settings {
        config: config(&a)?,
        origin: origin(&a)?,
        tls: tls_config(&a)?,
        recorder: (!a.no_record && !a.read_only_db).then(|| RecorderConfig {
            queue: a.queue_size,
            max_bytes: a.queue_bytes,
            batch: a.batch_size,
            interval: a.batch_interval_ms.max(Duration::from_millis(1)),
            nice: a.recorder_nice,
            ..Default::default()
        }),
        reload_every: a.reload_every_ms.max(Duration::from_millis(50)),
        retention: (!a.read_only_db)
            .then(|| Duration::from_secs(u64::from(a.retention_days) * 86_400)),
        metrics_listener: None,
        salt_rotation: (!a.salt_rotate_days.is_zero()).then_some(a.salt_rotate_days),
        attribution_window: a.learn.window_secs,
        access_log: a.access_log.as_deref().map(AccessLogTarget::parse),
    };
    let listener = TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("cannot listen on {}", a.listen))?;
    let local = listener.local_addr()?;
    let mut metrics_line = None;
    if let Some(addr) = a.metrics_listen {
        let l = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on --metrics-listen {addr}"))?;
        metrics_line = Some(format!("metrics on http://{}/metrics", l.local_addr()?));
        settings.metrics_listener = Some(l);
    }
    let store = open_for_serving(db, a.read_only_db).await?;
    let server = Server::new(settings, store.clone())
        .await
        .context("cannot start the recorder")?;
    let stop_analyzer = CancellationToken::new();
    let analyzer = (!a.analyze_every.is_zero() && !store.is_read_only()).then(|| {
        tokio::spawn(analyze_loop(
            store.clone(),
            learn_params,
            server.metrics(),
            a.analyze_every,
            stop_analyzer.clone(),
        ))
    });
    tracing::info!(%local, db = %crate::open::location(db)?, "pushwise serving");
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on https://{local}")?;
        if let Some(m) = &metrics_line {
            writeln!(out, "{m}")?;
        }
        out.flush()?;
    }
    let shutdown = {
        let stop = stop_analyzer.clone();
        async move {
            shutdown_signal().await;
            stop.cancel();
        }
    };
    server.run(listener, shutdown).await?;
    stop_analyzer.cancel();
    if let Some(t) = analyzer {
        let _ = t.await;
    }
    store.close().await;
    Ok(())
}

/// Runs an analyzer pass every `every`, reporting to the server's metrics.
async fn analyze_loop(
    store: Store,
    lp: LearnParams,
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
        match run_pass(&store, &lp, now_ms()).await {
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
            Err(e) if e.is_busy() => {
                metrics.analyzer_skipped.inc();
                tracing::debug!(
                    "analyzer pass skipped: another server of the fleet is running one"
                );
            }
            Err(e) => {
                metrics.analyzer_failures.inc();
                tracing::warn!(error = %e, "analyzer pass failed");
            }
        }
    }
}
