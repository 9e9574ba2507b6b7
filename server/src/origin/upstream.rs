//! The upstream origin: forwards requests to an HTTP/1.1 application (hyper client) and streams
//! its responses back, handling hop-by-hop headers as a reverse proxy should.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::{OriginRequest, simple};
use crate::body::Body;

/// An HTTP/1.1 application pushwise fronts.
#[derive(Debug)]
pub struct Upstream {
    base: Uri,
    client: Client<CappedConnector, Body>,
    timeout: Duration,
    /// One permit per request in flight to the upstream, held until its response body ends, so
    /// a request waits here (up to the timeout) rather than for a connection of its own.
    permits: Arc<tokio::sync::Semaphore>,
}

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

/// Removes hop-by-hop headers, including those the `Connection` header names, and `Upgrade`.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in HOP_BY_HOP {
        h.remove(n);
    }
    h.remove(header::UPGRADE);
}

impl Upstream {
    /// `base` must be `http://host:port` (an optional path prefix is kept). At most
    /// `max_connections` requests are in flight to it at once; a request that waits `timeout`
    /// for one of them, or for the upstream's answer, gets 503 / 504.
    pub fn new(
        base: Uri,
        timeout: Duration,
        max_connections: std::num::NonZeroUsize,
    ) -> Result<Self, crate::error::Error> {
        if base.scheme_str() != Some("http") || base.authority().is_none() {
            return Err(crate::error::Error::config(format!(
                "upstream must be an http://HOST:PORT URL, got {base}"
            )));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let connector = CappedConnector {
            inner: connector,
            permits: Arc::new(tokio::sync::Semaphore::new(max_connections.get())),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(max_connections.get())
            .build(connector);
        Ok(Upstream {
            base,
            client,
            timeout,
            permits: Arc::new(tokio::sync::Semaphore::new(max_connections.get())),
        })
    }

    pub async fn serve(&self, req: OriginRequest) -> Response<Body> {
        let started = tokio::time::Instant::now();
        let permit =
            match tokio::time::timeout(self.timeout, Arc::clone(&self.permits).acquire_owned())
                .await
            {
                Ok(Ok(p)) => p,
                _ => {
                    return simple(StatusCode::SERVICE_UNAVAILABLE, "upstream busy\n");
                }
            };
        let prefix = self.base.path().trim_end_matches('/');
        let pq = req.uri.path_and_query().map_or("/", |p| p.as_str());
        let target = format!(
            "http://{}{}{}",
            self.base.authority().map_or("", |a| a.as_str()),
            prefix,
            pq
        );
        let Ok(uri) = target.parse::<Uri>() else {
            return simple(StatusCode::BAD_REQUEST, "bad request target\n");
        };
        let mut headers = req.headers.clone();
        strip_hop_by_hop(&mut headers);
        // h2 carries the host in :authority; HTTP/1.1 needs a Host header.
        let host = req
            .uri
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(String::from)
            });
        if let Some(h) = host.and_then(|h| HeaderValue::from_str(&h).ok()) {
            headers.insert(header::HOST, h);
        }
        if let Some(ip) = req.client_ip {
            let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
                Some(prev) => format!("{prev}, {ip}"),
                None => ip.to_string(),
            };
            if let Ok(v) = HeaderValue::from_str(&xff) {
                headers.insert("x-forwarded-for", v);
            }
        }
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let mut up = Request::new(req.body);
        *up.method_mut() = req.method;
        *up.uri_mut() = uri;
        *up.headers_mut() = headers;
        let left = self.timeout.saturating_sub(started.elapsed());
        let resp = match tokio::time::timeout(left, self.client.request(up)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "upstream request failed");
                return simple(StatusCode::BAD_GATEWAY, "bad gateway\n");
            }
            Err(_) => return simple(StatusCode::GATEWAY_TIMEOUT, "gateway timeout\n"),
        };
        let (mut parts, incoming) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        // The permit goes with the body: the connection is busy until the body has been read.
        let body = incoming
            .map_err(std::io::Error::other)
            .map_frame(move |f| {
                let _held = &permit;
                f
            })
            .boxed();
        Response::from_parts(parts, body)
    }
}

/// The HTTP connector, with one permit per open TCP connection: hyper's pool bounds idle
/// connections but not all of them (a connection on its way back to the pool is in neither
/// count), so the cap on upstream connections is held here, where they are made.
#[derive(Debug, Clone)]
struct CappedConnector {
    inner: HttpConnector,
    permits: Arc<tokio::sync::Semaphore>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for CappedConnector {
    type Response = Capped;
    type Error = BoxError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Capped, BoxError>> + Send + 'static>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let mut inner = self.inner.clone();
        let permits = Arc::clone(&self.permits);
        Box::pin(async move {
            let permit = permits.acquire_owned().await?;
            let io = inner.call(uri).await?;
            Ok(Capped {
                io,
                _permit: permit,
            })
        })
    }
}

/// An upstream connection holding its permit until it closes.
#[derive(Debug)]
struct Capped {
    io: hyper_util::rt::TokioIo<tokio::net::TcpStream>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl hyper::rt::Read for Capped {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Capped {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}

impl hyper_util::client::legacy::connect::Connection for Capped {
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        self.io.connected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_named_by_connection_are_removed() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("content-type", HeaderValue::from_static("text/html"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("content-type"));
    }
}
