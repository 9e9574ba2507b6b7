//! Where responses come from: a static directory or an upstream HTTP/1.1 application.

pub mod files;
pub mod upstream;

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode, Uri, header};

use crate::body::{self, Body};

/// A request as the origin sees it, independent of the client's protocol.
#[derive(Debug)]
pub struct OriginRequest {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    /// Streamed, bounded ([`request_body`](crate::request_body)); empty for a static site.
    pub body: Body,
    /// The client's address, for `X-Forwarded-For` (never recorded).
    pub client_ip: Option<std::net::IpAddr>,
}

/// The configured origin.
#[derive(Debug)]
pub enum Origin {
    Files(files::StaticFiles),
    Upstream(upstream::Upstream),
}

impl Origin {
    /// Whether requests' bodies are worth reading: a static site answers without them (405 for
    /// anything but GET and HEAD), so their bodies are never read at all.
    pub fn takes_bodies(&self) -> bool {
        matches!(self, Origin::Upstream(_))
    }

    /// Whether the request's headers travel on to another server (the upstream): only then do
    /// the client's claims of who it is need removing (a static site reads none of them).
    pub fn forwards_headers(&self) -> bool {
        matches!(self, Origin::Upstream(_))
    }

    /// The answer, when the origin has it without waiting: a static site's refusals and its
    /// cached files (see [`files::StaticFiles::serve_now`]); `None` means ask [`serve`](Self::serve).
    pub fn serve_now(&self, req: &OriginRequest) -> Option<Response<Body>> {
        match self {
            Origin::Files(f) => f.serve_now(req),
            Origin::Upstream(_) => None,
        }
    }

    pub async fn serve(&self, req: OriginRequest) -> Response<Body> {
        match self {
            Origin::Files(f) => f.serve(&req).await,
            Origin::Upstream(u) => u.serve(req).await,
        }
    }
}

/// A small plain-text error response.
pub fn simple(status: StatusCode, msg: &'static str) -> Response<Body> {
    let mut r = Response::new(body::full(Bytes::from_static(msg.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, header::HeaderValue::from(msg.len()));
    r
}

/// True when a response may be pushed or hinted: 200 and shareable.
pub fn is_cacheable(resp: &http::response::Parts) -> bool {
    resp.status == StatusCode::OK && is_shareable(&resp.headers)
}

/// No `Set-Cookie`, not `Cache-Control: private` or `no-store`.
pub fn is_shareable(headers: &HeaderMap) -> bool {
    if headers.contains_key(header::SET_COOKIE) {
        return false;
    }
    !headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_ascii_lowercase())
        .any(|d| d == "private" || d == "no-store" || d.starts_with("private="))
}
