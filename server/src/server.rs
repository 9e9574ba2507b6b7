//! The server's lifecycle: build what connections share, serve a listener until shutdown, and
//! around it the background work the server owns (push-set reloads, retention, the metrics
//! listener), then drain the recorder so nothing recorded is lost.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use pushwise_store::time::now_ms;
use pushwise_store::{PushSets, SaltState, Store};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::accept::accept_loop;
use crate::client_keys::ClientKeys;
use crate::config::Settings;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::recorder::{Recorder, RecorderTask};
use crate::shared::Shared;
use crate::workers::Workers;

/// A configured server, ready to [`run`](Server::run).
pub struct Server {
    shared: Arc<Shared>,
    store: Store,
    recorder_task: Option<RecorderTask>,
    reload_every: Duration,
    retention: Option<Duration>,
    metrics_listener: Option<TcpListener>,
    /// The threads that serve connections (`None`: the caller's runtime serves them).
    workers: Option<Workers>,
    /// The salt in use when the server started and how often it rotates (`None`: never, or a
    /// database this process may not write).
    rotation: Option<(SaltState, Duration)>,
}

/// Serves `listener` with `settings` until `shutdown` resolves (see [`Server::run`]), then
/// closes the store.
pub async fn run(
    settings: Settings,
    store: Store,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let server = Server::new(settings, store.clone()).await?;
    server.run(listener, shutdown).await?;
    store.close().await;
    Ok(())
}

impl Server {
    /// Loads the newest push sets, starts the recorder (unless settings say not to record) and
    /// prepares what connections share and the worker threads that will serve connections.
    /// Fails only when a thread (the recorder's, a worker) cannot start.
    pub async fn new(settings: Settings, store: Store) -> Result<Server, Error> {
        let salt = client_salt(&store).await?;
        let keys = Arc::new(ClientKeys::new(salt.salt, settings.attribution_window));
        let rotation = settings
            .salt_rotation
            .filter(|_| !store.is_read_only())
            .map(|every| (salt, every));
        let metrics = Arc::new(Metrics::new());
        let sets = Arc::new(PushSets::new());
        if let Err(e) = sets.reload_if_newer(&store).await {
            tracing::warn!(error = %e, "could not load push sets at start");
        }
        publish_sets(&metrics, &sets);
        let (recorder, recorder_task) = match settings.recorder {
            None => (None, None),
            Some(cfg) => {
                let (r, t) = Recorder::start(store.clone(), cfg, Arc::clone(&metrics))?;
                (Some(r), Some(t))
            }
        };
        let access_log = match &settings.access_log {
            Some(t) => Some(crate::access_log::AccessLog::start(
                t,
                metrics.access_log_dropped.clone(),
            )?),
            None => None,
        };
        let mut config = settings.config;
        config.access_log = access_log.is_some();
        let workers = match std::num::NonZeroUsize::new(config.workers) {
            Some(n) => Some(Workers::start(n)?),
            None => None,
        };
        let shared = Arc::new(Shared::new(
            config,
            settings.origin,
            crate::shared::Outputs {
                recorder,
                access_log,
            },
            keys,
            sets,
            metrics,
            settings.tls,
        ));
        Ok(Server {
            shared,
            store,
            recorder_task,
            reload_every: settings.reload_every,
            retention: settings.retention,
            metrics_listener: settings.metrics_listener,
            workers,
            rotation,
        })
    }

    /// The server's metrics, for work the caller runs beside it (the analyzer's pass counters).
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.shared.metrics)
    }

    /// Serves `listener` until `shutdown` resolves: stops accepting, lets in-flight requests
    /// finish within the grace period, stops the background tasks and writes every queued record.
    /// The store stays open: the caller may share it (the binary's analyzer does) and closes it.
    pub async fn run(
        mut self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        let bg = CancellationToken::new();
        let tasks = self.spawn_background(&bg);
        let workers = self.workers.take();
        accept_loop(
            listener,
            Arc::clone(&self.shared),
            workers.as_ref(),
            shutdown,
        )
        .await;
        if let Some(w) = workers {
            w.stop().await;
        }
        bg.cancel();
        for t in tasks {
            let _ = t.await;
        }
        if self.shared.access_log.is_some() {
            // Every line of a served request is in the file before `run` returns.
            let shared = Arc::clone(&self.shared);
            let _ = tokio::task::spawn_blocking(move || {
                if let Some(l) = &shared.access_log {
                    l.sync(Duration::from_secs(5));
                }
            })
            .await;
        }
        if let Some(t) = self.recorder_task.take() {
            t.drain().await;
            let m = &self.shared.metrics;
            tracing::info!(
                written = m.recorder_written.get(),
                dropped = m.recorder_dropped.get(),
                "recorder drained"
            );
        }
        Ok(())
    }

    fn spawn_background(&mut self, stop: &CancellationToken) -> Vec<JoinHandle<()>> {
        let mut tasks = Vec::new();
        let metrics = Arc::clone(&self.shared.metrics);
        if let Some(l) = self.metrics_listener.take() {
            let (m, stop) = (Arc::clone(&metrics), stop.clone());
            tasks.push(tokio::spawn(async move {
                crate::metrics::serve(l, m, stop.cancelled_owned()).await
            }));
        }
        tasks.push(tokio::spawn(reload_loop(
            self.store.clone(),
            Arc::clone(&self.shared.sets),
            metrics,
            self.reload_every,
            stop.clone(),
        )));
        if let Some((salt, every)) = self.rotation.take() {
            tasks.push(tokio::spawn(rotation_loop(
                self.store.clone(),
                Arc::clone(&self.shared.keys),
                salt,
                every,
                stop.clone(),
            )));
        }
        if let Some(keep) = self.retention.filter(|_| !self.store.is_read_only()) {
            tasks.push(tokio::spawn(retention_loop(
                self.store.clone(),
                keep,
                stop.clone(),
            )));
        }
        tasks
    }
}

/// The client-key salt kept in the store; a read-only database without one yet gets a salt for
/// this process only (keys are still hashed, they just do not match across restarts).
async fn client_salt(store: &Store) -> Result<SaltState, Error> {
    match store.salt_state().await {
        Ok(s) => Ok(s),
        Err(e) => {
            tracing::warn!(error = %e, "no stored client salt; using a temporary one");
            SaltState::temporary().map_err(|e| Error::config(e.to_string()))
        }
    }
}

/// Rotates the client-key salt every `every` (from the time the stored salt was put in use),
/// with a hand-over around each rotation so visits in progress keep one key (see
/// [`ClientKeys`]). The new salt goes into the store first: a restart keeps using it.
async fn rotation_loop(
    store: Store,
    keys: Arc<ClientKeys>,
    mut salt: SaltState,
    every: Duration,
    stop: CancellationToken,
) {
    let window = keys.window();
    loop {
        let every_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
        let due_ms = salt.since_ms.saturating_add(every_ms);
        let until = |ms: i64| Duration::from_millis(ms.saturating_sub(now_ms()).max(0) as u64);
        tokio::select! {
            _ = tokio::time::sleep(until(due_ms.saturating_sub(window.as_millis() as i64))) => {}
            _ = stop.cancelled() => return,
        }
        keys.start_tracking();
        // At least one whole window of tracking, measured on the monotonic clock: a wall clock
        // that jumps forward (it does, on virtual machines) must not shrink it to nothing.
        tokio::select! {
            _ = tokio::time::sleep(until(due_ms).max(window)) => {}
            _ = stop.cancelled() => return,
        }
        let rotated = loop {
            match store.rotate_salt(&salt.salt, now_ms()).await {
                Ok(s) => break s,
                Err(e) => {
                    // Keep the old salt (and the hand-over's tracking) until the store takes it.
                    tracing::warn!(error = %e, "could not rotate the client-key salt; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                        _ = stop.cancelled() => return,
                    }
                }
            }
        };
        keys.rotate(rotated.salt);
        tracing::info!("rotated the client-key salt");
        salt = rotated;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(window) => {}
                _ = stop.cancelled() => return,
            }
            if keys.finish_handover_if_idle() {
                break;
            }
        }
    }
}

fn publish_sets(metrics: &Metrics, sets: &PushSets) {
    metrics.generation.set(sets.generation());
    metrics.set_assets.set(sets.asset_count() as i64);
    metrics.analyzer_pages.set(sets.page_count() as i64);
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
    // A fleet's store announces each generation as its pass commits: load it then, not at the
    // next tick. (The tick stays: it is what finds generations when notices cannot arrive.)
    let mut notices = store.generation_notices().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = notices.next() => {}
            _ = stop.cancelled() => return,
        }
        match sets.reload_if_newer(&store).await {
            Ok(true) => {
                publish_sets(&metrics, &sets);
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

/// Deletes events older than `keep`, hourly.
async fn retention_loop(store: Store, keep: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let cutoff = now_ms() - i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
        match store.prune_events_before(cutoff).await {
            Ok(n) if n > 0 => {
                tracing::info!(
                    deleted = n,
                    days = keep.as_secs() / 86_400,
                    "retention: pruned old events"
                );
                // Paths only those events used leave the dictionary too.
                match store.prune_strings().await {
                    Ok(k) => tracing::info!(deleted = k, "retention: pruned unused strings"),
                    Err(e) => tracing::warn!(error = %e, "retention: string prune failed"),
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention prune failed"),
        }
    }
}
