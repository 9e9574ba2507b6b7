//! One request/response exchange as the recorder and metrics see it, and the body wrapper that
//! records the exchange once its last byte has been handed to the connection.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::header;
use http_body::{Frame, SizeHint};
use pushwise_store::UaClass;
use pushwise_store::event::normalize_path;
use pushwise_store::{Event, PushMark, Referer};

use crate::body::Body;
use crate::conn::ConnState;
use crate::metrics::{Limit, Protocol};
use crate::shared::Shared;

/// What is known of a request when it arrives.
#[derive(Debug, Clone)]
pub struct ReqInfo {
    pub started: Instant,
    pub ts_ms: i64,
    pub method: std::borrow::Cow<'static, str>,
    pub path: String,
    pub client: i64,
    pub ua: UaClass,
    pub referer: Referer,
    pub conn_id: i64,
    pub stream_id: i64,
    pub protocol: Protocol,
    /// The raw headers, kept only for `--access-log` lines.
    pub user_agent: Option<String>,
    pub raw_referer: Option<String>,
    /// The client's address (the peer's, or from a trusted proxy's `X-Forwarded-For`): in memory
    /// only, for the learning cap per network ([`pushwise_store::PrefixCap`]); never recorded.
    pub client_ip: std::net::IpAddr,
    /// For a host name not among `--host` ([`Config::serves_host`]): served, never recorded.
    ///
    /// [`Config::serves_host`]: crate::config::Config::serves_host
    pub foreign_host: bool,
}

impl ReqInfo {
    /// What the recorder needs of a request, as it arrives on `conn`.
    pub fn new(
        shared: &Shared,
        conn: &ConnState,
        parts: &http::request::Parts,
        authority: &str,
        stream_id: u32,
        protocol: Protocol,
    ) -> ReqInfo {
        let (headers, uri, client_ip) = (&parts.headers, &parts.uri, conn.client_ip);
        let foreign_host = !shared.config.serves_host(authority);
        if foreign_host {
            shared.metrics.foreign_host_requests.inc();
        }
        let ua = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok());
        let raw_ref = headers.get(header::REFERER).and_then(|v| v.to_str().ok());
        let referer = match raw_ref {
            None => Referer::None,
            Some(raw) => {
                let mut hosts: Vec<&str> = shared.config.hosts.iter().map(String::as_str).collect();
                hosts.push(authority);
                // The client chose it: only a path answered here is recorded as it is.
                shared.known_paths.bound(Referer::reduce(
                    Some(raw),
                    &hosts,
                    shared.config.keep_query,
                ))
            }
        };
        let pq = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
        let ip = if conn.peer_trusted {
            let trusted = &shared.config.trusted_proxies;
            crate::forwarded::client_ip(client_ip, headers, trusted)
        } else {
            client_ip
        };
        // The keyed hash is only needed for events and access-log lines.
        let (client, ua_class) = if !(shared.recorder.is_some() || shared.config.access_log) {
            (0, UaClass::of(ua))
        } else if conn.peer_trusted {
            // Many clients share a proxy's connection: no per-connection cache.
            (shared.keys.key(&ip.to_string(), ua), UaClass::of(ua))
        } else {
            let epoch = shared.keys.cache_epoch();
            conn.client_key(epoch, ua, |ua| shared.keys.key(&client_ip.to_string(), ua))
        };
        let now = crate::clock::now();
        ReqInfo {
            client_ip: ip,
            started: now.instant,
            ts_ms: now.unix_ms(),
            method: pushwise_store::event::method(parts.method.as_str()),
            path: normalize_path(pq, shared.config.keep_query),
            client,
            ua: ua_class,
            referer,
            conn_id: conn.id as i64,
            stream_id: i64::from(stream_id),
            protocol,
            user_agent: ua.filter(|_| shared.config.access_log).map(String::from),
            raw_referer: raw_ref
                .filter(|_| shared.config.access_log)
                .map(String::from),
            foreign_host,
        }
    }
}

/// The request's authority: `:authority` (h2, or an absolute-form HTTP/1.1 target), else `Host`.
pub fn request_authority(parts: &http::request::Parts) -> String {
    parts
        .uri
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(String::from)
        })
        .unwrap_or_else(|| "localhost".to_string())
}

/// The request target as the origin is asked for it: the canonical path (see
/// [`canonical_path`](pushwise_store::event::canonical_path)) with the query as sent, so every
/// variant of a path (`//a`, `/./a`, `/%61`) is served, cached, recorded and learned as one.
/// `Err` is the answer to a target without a canonical form (414 when too long, else 400).
pub fn canonical_target(uri: &http::Uri) -> Result<String, (http::StatusCode, &'static str)> {
    use http::StatusCode;
    use pushwise_store::event::{MAX_PATH_LEN, canonical_path};
    let pq = uri.path_and_query().map_or("/", |p| p.as_str());
    if pq.len() > MAX_PATH_LEN {
        return Err((StatusCode::URI_TOO_LONG, "request target too long\n"));
    }
    let Some(path) = canonical_path(uri.path(), false) else {
        return Err((StatusCode::BAD_REQUEST, "bad path\n"));
    };
    Ok(match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    })
}

/// The request headers the origin gets: the client's own claims of who it is removed unless it
/// is a trusted proxy (see [`forwarded`](crate::forwarded)), when the origin passes them on.
pub fn origin_headers(
    mut headers: http::HeaderMap,
    conn: &ConnState,
    origin: &crate::origin::Origin,
) -> http::HeaderMap {
    if origin.forwards_headers() {
        crate::forwarded::strip_untrusted(&mut headers, conn.peer_trusted);
    }
    headers
}

/// What the response was, for the event.
#[derive(Debug, Clone)]
pub struct RespInfo {
    pub status: u16,
    pub content_type: Option<std::borrow::Cow<'static, str>>,
    pub cacheable: bool,
    pub is_page: bool,
    pub push: PushMark,
    pub holdout: bool,
}

impl RespInfo {
    pub fn of(parts: &http::response::Parts, is_page: bool) -> RespInfo {
        RespInfo {
            status: parts.status.as_u16(),
            content_type: parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(pushwise_store::event::content_type),
            cacheable: crate::origin::is_shareable(&parts.headers),
            is_page,
            push: PushMark::Requested,
            holdout: false,
        }
    }
}

/// The path was answered (2xx, or 304 for a copy the client has): a real path of the site, so
/// one of a bounded set, interned for events and remembered as a Referer worth recording.
fn answered(status: u16) -> bool {
    matches!(status, 200..=299 | 304)
}

/// Records one finished exchange: metrics always, an event when recording is on.
/// Takes the exchange by value so its strings move into the event instead of being copied.
pub fn finish(shared: &Shared, req: ReqInfo, resp: RespInfo, bytes: u64) {
    if resp.push == PushMark::Requested {
        shared.metrics.request(req.protocol, resp.status);
        shared.metrics.request_duration.observe(
            crate::clock::now()
                .instant
                .saturating_duration_since(req.started)
                .as_secs_f64(),
        );
        if let Some(log) = &shared.access_log {
            log.log(access_log_line(&req, &resp, bytes));
        }
    }
    // A push the client accepted to its end: it took what it was offered (requests: see `wrap`).
    if resp.push == PushMark::Pushed && answered(resp.status) {
        shared.quiet.took(req.client, &req.path);
    }
    if let Some(rec) = shared.recorder.as_ref().filter(|_| !req.foreign_host) {
        let mut event = Event {
            ts_ms: req.ts_ms,
            client: req.client,
            conn_id: req.conn_id,
            stream_id: req.stream_id,
            method: req.method,
            // Successful responses' paths are a bounded set: interned, so the event carries no
            // heap string to free on the recorder's thread.
            path: if answered(resp.status) {
                crate::intern::path(req.path)
            } else {
                pushwise_store::event::recorded_path(req.path, resp.status)
            },
            status: resp.status,
            bytes,
            content_type: resp.content_type,
            referer: req.referer,
            is_page: resp.is_page,
            browser: req.ua.is_browser(),
            cacheable: resp.cacheable,
            push: resp.push,
            holdout: resp.holdout,
            over_cap: false,
            source: None,
            source_line: None,
        };
        // A page view the learner could learn from counts against its network's cap.
        if shared.prefix_cap.mark(&mut event, req.client_ip) {
            shared.metrics.limit(Limit::prefix_cap);
        }
        rec.record(event);
    }
}

/// Events for assets skipped by digest and for assets hinted on a page view, so the analyzer knows
/// their need was not observable on this view (they carry the page as their Referer).
pub fn record_skips(shared: &Shared, page: &ReqInfo, skipped_digest: &[String], hinted: &[&str]) {
    let marks = skipped_digest
        .iter()
        .map(|p| (p.as_str(), PushMark::SkippedDigest))
        .chain(hinted.iter().map(|p| (*p, PushMark::Hinted)));
    for (path, mark) in marks {
        let req = ReqInfo {
            path: path.to_string(),
            referer: Referer::SameSite(page.path.clone()),
            ..page.clone()
        };
        let resp = RespInfo {
            status: 0,
            content_type: None,
            cacheable: true,
            is_page: false,
            push: mark,
            holdout: false,
        };
        finish(shared, req, resp, 0);
    }
}

/// A combined-format line (with the client key instead of the IP), re-importable by `pushwise import`.
fn access_log_line(req: &ReqInfo, resp: &RespInfo, bytes: u64) -> String {
    let q = |s: &Option<String>| log_escape(s.as_deref().unwrap_or("-"));
    format!(
        "{:016x} - - [{}] \"{} {} {}\" {} {} \"{}\" \"{}\"",
        req.client,
        pushwise_store::time::format_clf_date(req.ts_ms, 0),
        req.method,
        req.path,
        req.protocol.version(),
        resp.status,
        bytes,
        q(&req.raw_referer),
        q(&req.user_agent)
    )
}

/// A header value as an access-log field: `"`, `\\` and control characters escaped (`\\xHH`), so a
/// client cannot forge a line or a field of one.
fn log_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

type OnDone = Box<dyn FnOnce(u64) + Send + Sync>;

/// Counts body bytes and calls `on_done` exactly once, when the body is dropped (sent or aborted).
pub struct RecordingBody {
    inner: Body,
    bytes: u64,
    on_done: Option<OnDone>,
}

impl RecordingBody {
    pub fn new(inner: Body, on_done: impl FnOnce(u64) + Send + Sync + 'static) -> Self {
        RecordingBody {
            inner,
            bytes: 0,
            on_done: Some(Box::new(on_done)),
        }
    }

    /// Wraps a response body so the exchange is recorded when it ends.
    pub fn wrap(shared: Arc<Shared>, req: ReqInfo, resp: RespInfo, body: Body) -> Body {
        use http_body_util::BodyExt;
        // Known from the response head on, so the assets a page's body leads to may name it.
        if answered(resp.status) && shared.recorder.is_some() {
            shared.known_paths.insert(&req.path);
        }
        // An asset the client asked for: it took what it was offered (known from the head on,
        // so before the client can make its next request).
        if !resp.is_page && resp.push == PushMark::Requested && answered(resp.status) {
            shared.quiet.took(req.client, &req.path);
        }
        RecordingBody::new(body, move |bytes| finish(&shared, req, resp, bytes)).boxed()
    }
}

impl Drop for RecordingBody {
    fn drop(&mut self) {
        if let Some(f) = self.on_done.take() {
            f(self.bytes);
        }
    }
}

impl http_body::Body for RecordingBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &r
            && let Some(d) = f.data_ref()
        {
            this.bytes += d.len() as u64;
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_log_fields_cannot_break_out_of_their_quotes_or_line() {
        assert_eq!(log_escape("Mozilla/5.0"), "Mozilla/5.0");
        assert_eq!(log_escape("a\"b"), "a\\\"b");
        assert_eq!(log_escape("a\\"), "a\\\\");
        assert_eq!(log_escape("x\n1.2.3.4 - - [..]"), "x\\x0A1.2.3.4 - - [..]");
        assert_eq!(log_escape("\u{1b}[31m"), "\\x1B[31m");
    }
}
