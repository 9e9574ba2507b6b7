//! Prometheus metrics (prometheus-client) and the plain-HTTP `/metrics` listener.
//!
//! Counters are registered without `_total`; the encoder adds it. Every metric has HELP, and units
//! are in the names, so the scrape passes `promtool check metrics`.

use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use tokio::net::TcpListener;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub protocol: Protocol,
    pub status_class: StatusClass,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Protocol {
    h2,
    http1,
}

impl Protocol {
    pub const ALL: [Protocol; 2] = [Protocol::h2, Protocol::http1];

    /// The protocol as an access-log request line names it.
    pub fn version(self) -> &'static str {
        match self {
            Protocol::h2 => "HTTP/2",
            Protocol::http1 => "HTTP/1.1",
        }
    }
}

/// The status class label of a response (encoded as `1xx` .. `5xx`).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum StatusClass {
    Informational,
    Success,
    Redirection,
    ClientError,
    ServerError,
}

impl StatusClass {
    pub const ALL: [StatusClass; 5] = [
        StatusClass::Informational,
        StatusClass::Success,
        StatusClass::Redirection,
        StatusClass::ClientError,
        StatusClass::ServerError,
    ];

    pub fn of(status: u16) -> StatusClass {
        match status {
            0..=199 => StatusClass::Informational,
            200..=299 => StatusClass::Success,
            300..=399 => StatusClass::Redirection,
            400..=499 => StatusClass::ClientError,
            _ => StatusClass::ServerError,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StatusClass::Informational => "1xx",
            StatusClass::Success => "2xx",
            StatusClass::Redirection => "3xx",
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
        }
    }
}

impl prometheus_client::encoding::EncodeLabelValue for StatusClass {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelValueEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: PushOutcome,
}

/// What happened to one asset of a learned set on one page view.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum PushOutcome {
    promised,
    skipped_digest,
    skipped_diary,
    skipped_budget,
    skipped_uncacheable,
    refused_by_client,
    cancelled_by_client,
}

impl PushOutcome {
    pub const ALL: [PushOutcome; 7] = [
        PushOutcome::promised,
        PushOutcome::skipped_digest,
        PushOutcome::skipped_diary,
        PushOutcome::skipped_budget,
        PushOutcome::skipped_uncacheable,
        PushOutcome::refused_by_client,
        PushOutcome::cancelled_by_client,
    ];
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    pub limit: Limit,
}

/// A published limit (SECURITY.md) that a client reached: what was refused or cut.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Limit {
    /// A connection closed at accept: `--max-connections` were open.
    connections,
    /// A stream refused: `--max-streams` were being handled.
    streams,
    /// A request body larger than `--max-request-body`.
    request_body_size,
    /// A request body not complete within `--request-body-timeout`.
    request_body_time,
    /// A response the client gave no window for during `--send-timeout`.
    send_time,
    /// A connection closed with GOAWAY ENHANCE_YOUR_CALM: its client reset more streams than
    /// `--max-pending-resets` before they were handled (HTTP/2 rapid reset).
    pending_resets,
    /// An event dropped because the events waiting to be written held `--queue-bytes` already.
    recorder_bytes,
    /// A page view over its network's `--prefix-cap`: served and recorded, not learned from.
    prefix_cap,
}

impl Limit {
    pub const ALL: [Limit; 8] = [
        Limit::connections,
        Limit::streams,
        Limit::request_body_size,
        Limit::request_body_time,
        Limit::send_time,
        Limit::pending_resets,
        Limit::recorder_bytes,
        Limit::prefix_cap,
    ];
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DigestLabels {
    pub source: DigestSource,
    pub result: DigestResult,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum DigestSource {
    cookie,
    header,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum DigestResult {
    read,
    invalid,
}

/// Every metric pushwise exports.
#[derive(Debug)]
pub struct Metrics {
    pub registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    /// `requests`' series, resolved once: counting a response is one atomic add, not a look-up
    /// in the family's locked map. Indexed by protocol, then status class (their declaration
    /// order, which `Protocol::ALL` and `StatusClass::ALL` follow).
    request_series: [[Counter; StatusClass::ALL.len()]; Protocol::ALL.len()],
    pub request_duration: Histogram,
    pub page_views: Counter,
    pub pushes: Family<OutcomeLabels, Counter>,
    pub pushed_bytes: Counter,
    pub early_hints: Counter,
    pub holdout_views: Counter,
    pub quiet_views: Counter,
    pub digests: Family<DigestLabels, Counter>,
    pub recorder_written: Counter,
    pub recorder_dropped: Counter,
    pub access_log_dropped: Counter,
    pub foreign_host_requests: Counter,
    pub recorder_failed_batches: Counter,
    pub recorder_queue_depth: Gauge,
    pub analyzer_runs: Counter,
    pub analyzer_failures: Counter,
    pub analyzer_skipped: Counter,
    pub analyzer_duration: Histogram,
    pub analyzer_pages: Gauge,
    pub set_assets: Gauge,
    pub generation: Gauge,
    pub tls_handshakes: Counter,
    pub tls_handshake_failures: Counter,
    pub open_connections: Gauge,
    pub limits: Family<LimitLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("pushwise");
        let requests = Family::<RequestLabels, Counter>::default();
        r.register(
            "requests",
            "Requests served, by protocol and status class",
            requests.clone(),
        );
        let request_duration = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        r.register_with_unit(
            "request_duration",
            "Time from request headers to the end of the response body",
            Unit::Seconds,
            request_duration.clone(),
        );
        let page_views = Counter::default();
        r.register(
            "page_views",
            "Page (HTML) responses served",
            page_views.clone(),
        );
        let pushes = Family::<OutcomeLabels, Counter>::default();
        r.register(
            "pushes",
            "Assets of learned push sets, by what happened to them",
            pushes.clone(),
        );
        let pushed_bytes = Counter::default();
        r.register_with_unit(
            "pushed",
            "Body bytes sent on pushed streams",
            Unit::Bytes,
            pushed_bytes.clone(),
        );
        let early_hints = Counter::default();
        r.register(
            "early_hints",
            "103 Early Hints responses sent",
            early_hints.clone(),
        );
        let holdout_views = Counter::default();
        r.register(
            "holdout_views",
            "Page views served without push or hints on purpose (holdout)",
            holdout_views.clone(),
        );
        let quiet_views = Counter::default();
        r.register(
            "quiet_views",
            "Page views held back from push and hints because the client took nothing it was offered before (quiet-client rule)",
            quiet_views.clone(),
        );
        let digests = Family::<DigestLabels, Counter>::default();
        r.register(
            "cache_digests",
            "Cache digests received, by source and whether they decoded",
            digests.clone(),
        );
        let recorder_written = Counter::default();
        r.register(
            "recorder_events_written",
            "Events written to the database",
            recorder_written.clone(),
        );
        let recorder_dropped = Counter::default();
        r.register(
            "recorder_events_dropped",
            "Events dropped because the queue was full or the database refused them too long",
            recorder_dropped.clone(),
        );
        let access_log_dropped = Counter::default();
        r.register(
            "access_log_dropped",
            "Access-log lines dropped because the writer fell behind (the request was served)",
            access_log_dropped.clone(),
        );
        let foreign_host_requests = Counter::default();
        r.register(
            "foreign_host_requests",
            "Requests for a host name not among --host: served, never pushed, hinted or recorded",
            foreign_host_requests.clone(),
        );
        let recorder_failed_batches = Counter::default();
        r.register(
            "recorder_failed_batches",
            "Batches the database refused (retried)",
            recorder_failed_batches.clone(),
        );
        let recorder_queue_depth = Gauge::default();
        r.register(
            "recorder_queue_depth",
            "Events waiting in the recorder queue, sampled by the writer at each batch",
            recorder_queue_depth.clone(),
        );
        let analyzer_runs = Counter::default();
        r.register(
            "analyzer_runs",
            "Analyzer passes completed",
            analyzer_runs.clone(),
        );
        let analyzer_failures = Counter::default();
        r.register(
            "analyzer_failures",
            "Analyzer passes that failed",
            analyzer_failures.clone(),
        );
        let analyzer_skipped = Counter::default();
        r.register(
            "analyzer_skipped",
            "Analyzer passes skipped because another server of the fleet was running one",
            analyzer_skipped.clone(),
        );
        let analyzer_duration = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        r.register_with_unit(
            "analyzer_duration",
            "Duration of analyzer passes",
            Unit::Seconds,
            analyzer_duration.clone(),
        );
        let analyzer_pages = Gauge::default();
        r.register(
            "analyzer_pages",
            "Pages with learned statistics in the current generation",
            analyzer_pages.clone(),
        );
        let set_assets = Gauge::default();
        r.register(
            "push_set_assets",
            "Distinct page and asset pairs pushed in any context by the loaded generation",
            set_assets.clone(),
        );
        let generation = Gauge::default();
        r.register(
            "push_set_generation",
            "Push-set generation loaded by this server",
            generation.clone(),
        );
        let tls_handshakes = Counter::default();
        r.register(
            "tls_handshakes",
            "TLS handshakes completed",
            tls_handshakes.clone(),
        );
        let tls_handshake_failures = Counter::default();
        r.register(
            "tls_handshake_failures",
            "TLS handshakes that failed or timed out",
            tls_handshake_failures.clone(),
        );
        let open_connections = Gauge::default();
        r.register(
            "open_connections",
            "Client connections open now",
            open_connections.clone(),
        );
        let limits = Family::<LimitLabels, Counter>::default();
        r.register(
            "limit_hits",
            "Connections, streams and bodies cut or refused by a published limit (SECURITY.md)",
            limits.clone(),
        );
        // Every (protocol, status class) series exists from the start (see `zero_every_label`).
        let request_series = Protocol::ALL.map(|protocol| {
            StatusClass::ALL.map(|status_class| {
                requests
                    .get_or_create(&RequestLabels {
                        protocol,
                        status_class,
                    })
                    .clone()
            })
        });
        let m = Metrics {
            registry: r,
            requests,
            request_duration,
            page_views,
            pushes,
            pushed_bytes,
            early_hints,
            holdout_views,
            quiet_views,
            digests,
            recorder_written,
            recorder_dropped,
            access_log_dropped,
            foreign_host_requests,
            recorder_failed_batches,
            recorder_queue_depth,
            analyzer_runs,
            analyzer_failures,
            analyzer_skipped,
            analyzer_duration,
            analyzer_pages,
            set_assets,
            generation,
            tls_handshakes,
            tls_handshake_failures,
            open_connections,
            limits,
            request_series,
        };
        m.zero_every_label();
        m
    }

    /// Counts one response to a request (not a push) in `pushwise_requests_total`.
    pub fn request(&self, protocol: Protocol, status: u16) {
        self.request_series[protocol as usize][StatusClass::of(status) as usize].inc();
    }

    /// Creates every known label combination at 0, so a fresh server's scrape already has each
    /// family a dashboard queries (a family with no series shows "no data", not 0).
    /// (`requests`' series are created with `request_series` in `new`.)
    fn zero_every_label(&self) {
        for outcome in PushOutcome::ALL {
            let _ = self.pushes.get_or_create(&OutcomeLabels { outcome });
        }
        for limit in Limit::ALL {
            let _ = self.limits.get_or_create(&LimitLabels { limit });
        }
        for source in [DigestSource::cookie, DigestSource::header] {
            for result in [DigestResult::read, DigestResult::invalid] {
                let _ = self.digests.get_or_create(&DigestLabels { source, result });
            }
        }
    }

    pub fn limit(&self, limit: Limit) {
        self.limits.get_or_create(&LimitLabels { limit }).inc();
    }

    pub fn push(&self, outcome: PushOutcome) {
        self.pushes.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    pub fn push_n(&self, outcome: PushOutcome, n: u64) {
        if n > 0 {
            self.pushes
                .get_or_create(&OutcomeLabels { outcome })
                .inc_by(n);
        }
    }

    pub fn digest(&self, source: DigestSource, result: DigestResult) {
        self.digests
            .get_or_create(&DigestLabels { source, result })
            .inc();
    }

    /// The exposition in the Prometheus text format (0.0.4), which every scraper and `promtool`
    /// read: prometheus-client writes OpenMetrics, whose counter metadata names the family without
    /// `_total` and which has `# UNIT` and `# EOF` lines; this rewrites those three things.
    pub fn encode(&self) -> String {
        let mut om = String::new();
        if prometheus_client::encoding::text::encode(&mut om, &self.registry).is_err() {
            return String::new();
        }
        openmetrics_to_prometheus(&om)
    }
}

fn openmetrics_to_prometheus(om: &str) -> String {
    let counters: std::collections::HashSet<&str> = om
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(om.len());
    for line in om.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let meta = line
            .strip_prefix("# HELP ")
            .map(|r| ("# HELP ", r))
            .or_else(|| line.strip_prefix("# TYPE ").map(|r| ("# TYPE ", r)));
        if let Some((kind, rest)) = meta {
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            if counters.contains(name) && !name.ends_with("_total") {
                out.push_str(&format!("{kind}{name}_total {tail}\n"));
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Serves `/metrics` over plain HTTP/1.1 until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning on the error.
                    tracing::warn!(error = %e, "metrics accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return,
        };
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let metrics = Arc::clone(&metrics);
                async move {
                    let resp = if req.uri().path() == "/metrics" {
                        Response::builder()
                            .header(
                                header::CONTENT_TYPE,
                                "text/plain; version=0.0.4; charset=utf-8",
                            )
                            .body(Full::new(Bytes::from(metrics.encode())))
                    } else {
                        Response::builder()
                            .status(StatusCode::NOT_FOUND)
                            .body(Full::new(Bytes::from_static(b"try /metrics\n")))
                    };
                    Ok::<_, std::convert::Infallible>(resp.unwrap_or_default())
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pre-resolved series are the family's own: a response counted through `request` is the
    /// one the scrape shows, under its protocol and status class, and no other series moves.
    #[test]
    fn each_response_is_counted_under_its_protocol_and_status_class() {
        let m = Metrics::new();
        m.request(Protocol::h2, 200);
        m.request(Protocol::h2, 204);
        m.request(Protocol::http1, 404);
        m.request(Protocol::h2, 503);
        m.request(Protocol::http1, 101);
        let text = m.encode();
        let count = |protocol: &str, class: &str| {
            let prefix = format!(
                "pushwise_requests_total{{protocol=\"{protocol}\",status_class=\"{class}\"}} "
            );
            let line = text
                .lines()
                .find(|l| l.starts_with(&prefix))
                .unwrap_or_else(|| panic!("no {prefix} in\n{text}"));
            line[prefix.len()..].trim().parse::<u64>().unwrap()
        };
        assert_eq!(count("h2", "2xx"), 2);
        assert_eq!(count("http1", "4xx"), 1);
        assert_eq!(count("h2", "5xx"), 1);
        assert_eq!(count("http1", "1xx"), 1);
        for (p, c) in [
            ("h2", "1xx"),
            ("h2", "3xx"),
            ("h2", "4xx"),
            ("http1", "2xx"),
            ("http1", "3xx"),
            ("http1", "5xx"),
        ] {
            assert_eq!(count(p, c), 0, "{p} {c}");
        }
    }
}
