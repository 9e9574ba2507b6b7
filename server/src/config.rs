//! The server's validated runtime configuration (the binary parses flags into this once).

use std::time::Duration;

/// How learned sets reach clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushMode {
    /// Server push where the client allows it, Early Hints where it does not.
    Push,
    /// Early Hints / preload links only.
    Hints,
    /// Neither (still records).
    Off,
}

/// Everything the request path needs to know, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The site's own host names (besides the request's `:authority`), for Referer reduction.
    pub hosts: Vec<String>,
    pub keep_query: bool,
    pub push_mode: PushMode,
    /// Share of page views served without push or hints, in [0, 1].
    pub holdout: f64,
    /// Send 103 Early Hints on HTTP/1.1 too (not supported by the HTTP/1.1 stack: Link headers only).
    pub early_hints_h1: bool,
    pub digest_cookie: String,
    /// Longest the digest cookie may live: the assets' freshness.
    pub digest_max_age: u64,
    /// At most this many assets go into the digest cookie.
    pub digest_max_urls: usize,
    /// Byte budget of what is pushed for one page view.
    pub push_budget_bytes: u64,
    pub max_concurrent_streams: u32,
    pub max_header_list_size: u32,
    pub idle_timeout: Duration,
    pub handshake_timeout: Duration,
    pub shutdown_grace: Duration,
    /// Largest request body accepted (forwarded to an upstream).
    pub max_request_body: usize,
    /// Write a combined-format access-log line per request through tracing.
    pub access_log: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hosts: Vec::new(),
            keep_query: false,
            push_mode: PushMode::Push,
            holdout: 0.05,
            early_hints_h1: false,
            digest_cookie: "pushwise_digest".into(),
            digest_max_age: 3600,
            digest_max_urls: 64,
            push_budget_bytes: 512 * 1024,
            max_concurrent_streams: 128,
            max_header_list_size: 32 * 1024,
            idle_timeout: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            max_request_body: 8 * 1024 * 1024,
            access_log: false,
        }
    }
}
