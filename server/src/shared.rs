//! What every connection shares: the validated configuration, the origin, the recorder, the
//! client keyer, the push sets in memory, the metrics and the TLS configuration.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use pushwise_store::PushSets;

use crate::client_keys::ClientKeys;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::origin::Origin;
use crate::recorder::Recorder;

/// Everything a connection needs, shared by all of them.
pub struct Shared {
    pub config: Config,
    pub origin: Origin,
    pub recorder: Option<Recorder>,
    pub access_log: Option<crate::access_log::AccessLog>,
    pub keys: Arc<ClientKeys>,
    /// Page views each network may teach per page per window ([`Config::prefix_cap`]).
    pub prefix_cap: pushwise_store::PrefixCap,
    /// Paths answered successfully: the only same-site Referers recorded as they are.
    pub known_paths: crate::known_paths::KnownPaths,
    /// Recent browser clients' activity, for the quiet-client rule ([`crate::quiet`]).
    pub quiet: crate::quiet::QuietClients,
    pub sets: Arc<PushSets>,
    pub metrics: Arc<Metrics>,
    pub tls: Arc<rustls::ServerConfig>,
    /// One permit per open connection ([`Config::max_connections`]).
    pub connections: Arc<tokio::sync::Semaphore>,
    /// One permit per stream being handled ([`Config::max_streams`]).
    pub streams: Arc<tokio::sync::Semaphore>,
    next_conn: AtomicU64,
}

/// Where each served request is written down: the recorder (events for learning) and the
/// access log (lines for people and `pushwise import`); either may be off.
pub(crate) struct Outputs {
    pub recorder: Option<Recorder>,
    pub access_log: Option<crate::access_log::AccessLog>,
}

impl Shared {
    pub(crate) fn new(
        config: Config,
        origin: Origin,
        Outputs {
            recorder,
            access_log,
        }: Outputs,
        keys: Arc<ClientKeys>,
        sets: Arc<PushSets>,
        metrics: Arc<Metrics>,
        tls: Arc<rustls::ServerConfig>,
    ) -> Shared {
        Shared {
            connections: Arc::new(tokio::sync::Semaphore::new(config.max_connections.get())),
            streams: Arc::new(tokio::sync::Semaphore::new(config.max_streams.get())),
            prefix_cap: pushwise_store::PrefixCap::new(config.prefix_cap),
            known_paths: Default::default(),
            quiet: Default::default(),
            config,
            origin,
            recorder,
            access_log,
            keys,
            sets,
            metrics,
            tls,
            next_conn: AtomicU64::new(1),
        }
    }

    /// A new connection id (ids are unique per process, starting at 1).
    pub(crate) fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }
}
