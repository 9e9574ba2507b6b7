//! The server's validated configuration: the binary parses flags into these types once, and a
//! value that could be wrong (a share outside 0..=1, a zero count, a cookie name with `;`) cannot
//! be constructed, so nothing downstream checks again.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use crate::origin::Origin;
use crate::recorder::RecorderConfig;

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

/// A value a setting refuses, with what it accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSetting(String);

/// A share of page views, in 0..=1 by construction.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Share(f64);

impl Share {
    pub const ZERO: Share = Share(0.0);

    pub fn new(v: f64) -> Result<Share, InvalidSetting> {
        if (0.0..=1.0).contains(&v) {
            Ok(Share(v))
        } else {
            Err(InvalidSetting(format!(
                "a share must be between 0 and 1, got {v}"
            )))
        }
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

impl std::str::FromStr for Share {
    type Err = InvalidSetting;
    fn from_str(s: &str) -> Result<Share, InvalidSetting> {
        let v: f64 = s.trim().parse().map_err(|_| {
            InvalidSetting(format!(
                "a share must be a number between 0 and 1, got {s:?}"
            ))
        })?;
        Share::new(v)
    }
}

/// A cookie name made of letters, digits, `_` and `-` only, so it can never break the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieName(String);

impl CookieName {
    pub fn new(name: &str) -> Result<CookieName, InvalidSetting> {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(InvalidSetting(format!(
                "a cookie name must be letters, digits, _ and - only, got {name:?}"
            )));
        }
        Ok(CookieName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for CookieName {
    type Err = InvalidSetting;
    fn from_str(s: &str) -> Result<CookieName, InvalidSetting> {
        CookieName::new(s)
    }
}

/// Everything the request path needs to know, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The site's own host names (`--host`): absolute Referers on them are same-site, and when
    /// any are given, only requests for them are pushed to, hinted or recorded
    /// ([`Config::serves_host`]).
    pub hosts: Vec<String>,
    pub keep_query: bool,
    pub push_mode: PushMode,
    /// Share of page views served without push or hints.
    pub holdout: Share,
    /// Send 103 Early Hints on HTTP/1.1 too (not supported by the HTTP/1.1 stack: Link headers only).
    pub early_hints_h1: bool,
    pub digest_cookie: CookieName,
    /// Longest the digest cookie may live: the assets' freshness.
    pub digest_max_age: u64,
    /// At most this many assets go into the digest cookie.
    pub digest_max_urls: usize,
    /// Byte budget of what is pushed for one page view.
    pub push_budget_bytes: u64,
    pub max_concurrent_streams: NonZeroU32,
    pub max_header_list_size: u32,
    pub idle_timeout: Duration,
    pub handshake_timeout: Duration,
    pub shutdown_grace: Duration,
    /// Largest request body accepted (streamed to an upstream; a static site takes none).
    pub max_request_body: usize,
    /// A request body must have arrived whole this long after its headers (else 408 / reset).
    pub request_body_timeout: Duration,
    /// A response whose client grants no flow-control window for this long is reset.
    pub send_timeout: Duration,
    /// Open connections (TLS or not yet) at most; more are closed as soon as accepted.
    pub max_connections: std::num::NonZeroUsize,
    /// Threads that serve connections, each with a single-threaded runtime of its own (see
    /// `workers`); 0 serves them on the caller's runtime instead.
    pub workers: usize,
    /// Streams being handled at once across all connections; more are refused (REFUSED_STREAM).
    pub max_streams: std::num::NonZeroUsize,
    /// Streams a client may reset before the server has handled them, per connection, before it
    /// gets GOAWAY ENHANCE_YOUR_CALM: the HTTP/2 rapid-reset defence (CVE-2023-44487).
    pub max_pending_resets: usize,
    /// An access log is written ([`crate::config::Settings::access_log`]): keep the raw Referer
    /// and User-Agent of each request for its line.
    pub access_log: bool,
    /// Peers whose `X-Forwarded-For` is believed (load balancers in front of pushwise).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Views of one page from one network (/24, /64) learned from per window
    /// ([`pushwise_store::prefix_cap::WINDOW_MS`]); more are recorded as over the cap. 0: no cap.
    pub prefix_cap: u32,
}

/// One worker per core the process may use (1 if that cannot be told).
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hosts: Vec::new(),
            keep_query: false,
            push_mode: PushMode::Push,
            holdout: Share(0.05),
            early_hints_h1: false,
            digest_cookie: CookieName("pushwise_digest".into()),
            digest_max_age: 3600,
            digest_max_urls: 64,
            push_budget_bytes: 512 * 1024,
            max_concurrent_streams: NonZeroU32::new(128).expect("not zero"),
            max_header_list_size: 32 * 1024,
            idle_timeout: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            max_request_body: 8 * 1024 * 1024,
            request_body_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(30),
            max_connections: std::num::NonZeroUsize::new(4096).expect("not zero"),
            workers: default_workers(),
            max_streams: std::num::NonZeroUsize::new(8192).expect("not zero"),
            max_pending_resets: 20,
            access_log: false,
            trusted_proxies: Vec::new(),
            prefix_cap: 10,
        }
    }
}

/// What [`Server::new`](crate::Server::new) needs besides the store: the request path's
/// configuration, the origin, TLS, and the lifecycle's settings.
#[derive(Debug)]
pub struct Settings {
    pub config: Config,
    pub origin: Origin,
    pub tls: Arc<rustls::ServerConfig>,
    /// `None`: do not record (`--no-record`).
    pub recorder: Option<RecorderConfig>,
    /// How often to look for a newer push-set generation.
    pub reload_every: Duration,
    /// Events older than this are deleted, hourly. `None`: keep everything.
    pub retention: Option<Duration>,
    /// Write an access log here (`--access-log`); `config.access_log` must be set with it.
    pub access_log: Option<crate::access_log::AccessLogTarget>,
    /// Serve Prometheus metrics on this listener (bound by the caller, so it can print the address).
    pub metrics_listener: Option<tokio::net::TcpListener>,
    /// Replace the client-key salt this often (`--salt-rotate-days`); `None`: never.
    pub salt_rotation: Option<Duration>,
    /// The analyzer's attribution window: around a salt rotation, a client active within it keeps
    /// its key, so its visit is not split.
    pub attribution_window: Duration,
}

impl Config {
    /// Whether a request for `authority` (`host[:port]`) may be pushed to, hinted and learned
    /// from: only the configured hosts (`--host`, by default the names the certificate covers),
    /// any host when the list is empty or holds `*`. `*.example.com` covers one label, as in a
    /// certificate: `www.example.com`, not `example.com` nor `a.b.example.com`. A request for
    /// another name (a scanner's IP-literal Host, a domain pointed at the server by someone else)
    /// is still served, but it neither receives this site's sets nor teaches them.
    pub fn serves_host(&self, authority: &str) -> bool {
        if self.hosts.is_empty() || self.hosts.iter().any(|h| h == "*") {
            return true;
        }
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => authority.rsplit_once(':').map_or(authority, |(h, port)| {
                if port.bytes().all(|b| b.is_ascii_digit()) {
                    h
                } else {
                    authority
                }
            }),
        };
        let host = host.trim_end_matches('.');
        if host.is_empty() {
            return false;
        }
        self.hosts.iter().any(|h| {
            let h = h.trim_end_matches('.');
            match h.strip_prefix("*.") {
                Some(parent) => host.split_once('.').is_some_and(|(label, rest)| {
                    !label.is_empty() && rest.eq_ignore_ascii_case(parent)
                }),
                None => h.eq_ignore_ascii_case(host),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_configured_host_names_are_served_sets_and_any_when_none_are() {
        let mut c = Config::default();
        assert!(c.serves_host("203.0.113.7:8443"));
        c.hosts = vec!["example.com".into(), "www.example.com".into()];
        for ok in [
            "example.com",
            "EXAMPLE.com:443",
            "www.example.com.",
            "example.com:8443",
        ] {
            assert!(c.serves_host(ok), "{ok}");
        }
        for no in [
            "203.0.113.7:8443",
            "[::1]:8443",
            "evil.example",
            "example.com.evil",
            "",
            ":443",
        ] {
            assert!(!c.serves_host(no), "{no}");
        }
        c.hosts = vec!["::1".into()];
        assert!(c.serves_host("[::1]:8443"));
        c.hosts = vec!["*.example.com".into()];
        assert!(c.serves_host("www.example.com") && c.serves_host("CDN.Example.com:443"));
        for no in [
            "example.com",
            "a.b.example.com",
            ".example.com",
            "wwwexample.com",
            "*.example.com.evil",
        ] {
            assert!(!c.serves_host(no), "{no}");
        }
        c.hosts = vec!["example.com".into(), "*".into()];
        assert!(c.serves_host("203.0.113.7"));
    }

    #[test]
    fn shares_outside_zero_to_one_are_refused_with_the_range() {
        assert!(Share::new(0.0).is_ok() && Share::new(1.0).is_ok());
        assert!("0.05".parse::<Share>().is_ok());
        let e = "-0.1".parse::<Share>().unwrap_err().to_string();
        assert!(e.contains("between 0 and 1"), "{e}");
        assert!("1.5".parse::<Share>().is_err() && "NaN".parse::<Share>().is_err());
    }

    #[test]
    fn cookie_names_that_could_break_the_header_are_refused() {
        assert!(CookieName::new("pushwise_digest-2").is_ok());
        for bad in ["", "a;b", "a=b", "a b", "é"] {
            assert!(CookieName::new(bad).is_err(), "{bad:?}");
        }
    }
}
