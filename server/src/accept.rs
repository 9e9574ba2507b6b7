//! The accept loop: TLS handshakes, ALPN dispatch to HTTP/2 or HTTP/1.1, and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::conn::ConnState;
use crate::metrics::{Limit, Metrics};
use crate::shared::Shared;
use crate::workers::Workers;

/// Serves `listener` until `shutdown` resolves, then stops accepting, lets in-flight streams
/// finish (up to the configured grace period) and returns. Each connection is served on the next
/// of `workers` in turn, or on this runtime without them.
///
/// The caller owns what outlives connections (the recorder's writer): drain it after this returns.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    workers: Option<&Workers>,
    shutdown: impl Future<Output = ()>,
) {
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let acceptor = TlsAcceptor::from(Arc::clone(&shared.tls));
    tracing::debug!(
        workers = workers.map_or(0, Workers::len),
        "accepting connections"
    );
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        // Over the cap the connection is closed at once: a client learns it now, and the slots
        // held by idle or handshake-less connections come back through their timeouts.
        let Ok(permit) = Arc::clone(&shared.connections).try_acquire_owned() else {
            shared.metrics.limit(Limit::connections);
            drop(tcp);
            continue;
        };
        let shared = Arc::clone(&shared);
        let acceptor = acceptor.clone();
        let cancel = cancel.clone();
        let t2 = tracker.clone();
        let Some(workers) = workers else {
            tracker.spawn(async move {
                connection(shared, acceptor, tcp, peer, cancel, t2).await;
                drop(permit);
            });
            continue;
        };
        // The socket is registered with this runtime's reactor: it moves to the worker's as a
        // plain socket and is registered there (inside the worker, where its reactor is).
        let tcp = match tcp.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "could not hand a connection to a worker");
                continue;
            }
        };
        workers.spawn(tracker.track_future(async move {
            match TcpStream::from_std(tcp) {
                Ok(tcp) => connection(shared, acceptor, tcp, peer, cancel, t2).await,
                Err(e) => tracing::warn!(error = %e, "a worker could not take a connection"),
            }
            drop(permit);
        }));
    }
    drop(listener);
    tracing::info!(
        connections = tracker.len(),
        "shutting down: finishing in-flight requests"
    );
    cancel.cancel();
    tracker.close();
    if tokio::time::timeout(shared.config.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            tasks = tracker.len(),
            "grace period over: closing connections with requests still in flight"
        );
    }
}

struct OpenGuard(Arc<Metrics>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open_connections.dec();
    }
}

async fn connection(
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let _ = tcp.set_nodelay(true);
    let tls =
        match tokio::time::timeout(shared.config.handshake_timeout, acceptor.accept(tcp)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                shared.metrics.tls_handshake_failures.inc();
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                shared.metrics.tls_handshake_failures.inc();
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        };
    shared.metrics.tls_handshakes.inc();
    shared.metrics.open_connections.inc();
    let _open = OpenGuard(Arc::clone(&shared.metrics));
    let id = shared.next_conn_id();
    let trusted = crate::forwarded::is_trusted(peer.ip(), &shared.config.trusted_proxies);
    let conn = Arc::new(ConnState::new(id, peer.ip(), trusted));
    let is_h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let started = std::time::Instant::now();
    if is_h2 {
        crate::h2conn::serve(Arc::clone(&shared), Arc::clone(&conn), tls, cancel, tracker).await;
    } else {
        crate::h1::serve(Arc::clone(&shared), Arc::clone(&conn), tls, cancel).await;
    }
    // DEBUG: a line per connection is noise at production rates (metrics count connections).
    tracing::debug!(
        conn = id,
        protocol = if is_h2 { "h2" } else { "http/1.1" },
        requests = conn.requests.load(Ordering::Relaxed),
        pushes = conn.pushes.load(Ordering::Relaxed),
        push_refused = conn.push_refused(),
        secs = started.elapsed().as_secs_f64(),
        "connection closed"
    );
}
