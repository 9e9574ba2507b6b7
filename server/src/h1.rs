//! HTTP/1.1 connections (ALPN `http/1.1` or none), served with hyper. No push on HTTP/1.1: page
//! views get the learned set as `Link: rel=preload` headers on the final response.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use crate::body::Body;
use crate::conn::ConnState;
use crate::exchange::{
    RecordingBody, ReqInfo, RespInfo, canonical_target, origin_headers, record_skips,
    request_authority,
};
use crate::metrics::{Limit, Protocol};
use crate::origin::{OriginRequest, simple};
use crate::push;
use crate::request_body::{self, Fault, answer_or_cut, declared_length, within_deadline};
use crate::shared::Shared;

pub(crate) async fn serve<IO>(
    shared: Arc<Shared>,
    conn: Arc<ConnState>,
    io: IO,
    cancel: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = {
        let shared = Arc::clone(&shared);
        let conn = Arc::clone(&conn);
        service_fn(move |req: Request<Incoming>| {
            let shared = Arc::clone(&shared);
            let conn = Arc::clone(&conn);
            async move { Ok::<_, std::convert::Infallible>(handle(shared, conn, req).await) }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(shared.config.idle_timeout)
        .max_buf_size((shared.config.max_header_list_size as usize).max(8192));
    let c = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(c);
    tokio::select! {
        r = c.as_mut() => { if let Err(e) = r { tracing::debug!(conn = conn.id, error = %e, "http/1.1 connection error"); } }
        _ = cancel.cancelled() => {
            c.as_mut().graceful_shutdown();
            let _ = c.await;
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnState>,
    req: Request<Incoming>,
) -> Response<Body> {
    conn.requests.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = req.into_parts();
    let authority = request_authority(&parts);
    let info = ReqInfo::new(&shared, &conn, &parts, &authority, 0, Protocol::http1);
    let target = match canonical_target(&parts.uri) {
        Ok(t) => t,
        Err((status, msg)) => return wrap(&shared, info, simple(status, msg), false, false),
    };
    let cfg = &shared.config;
    let (body, fault) = if !shared.origin.takes_bodies() {
        (crate::body::empty(), Fault::complete())
    } else if declared_length(&parts.headers).is_some_and(|n| n > cfg.max_request_body as u64) {
        shared.metrics.limit(Limit::request_body_size);
        let r = simple(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
        return wrap(&shared, info, r, false, false);
    } else {
        request_body::h1(body, cfg.max_request_body)
    };
    // HTTP/1.1 request targets are origin-form; give the origin an absolute URI like h2's.
    let uri = format!("https://{authority}{target}")
        .parse()
        .unwrap_or_else(|_| parts.uri.clone());
    let serve = shared.origin.serve(OriginRequest {
        method: parts.method.clone(),
        uri,
        headers: origin_headers(parts.headers.clone(), &conn, &shared.origin),
        body,
        client_ip: Some(conn.client_ip),
    });
    let resp = within_deadline(serve, &fault, cfg.request_body_timeout).await;
    let resp = answer_or_cut(&shared.metrics, resp, &fault);
    let is_page = parts.method == Method::GET
        && resp.status() == StatusCode::OK
        && resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/html"));
    if !is_page {
        return wrap(&shared, info, resp, false, false);
    }
    shared.metrics.page_views.inc();
    let plan = push::plan_view(&shared, &conn, &parts.headers, &authority, &info);
    let (mut rp, rb) = resp.into_parts();
    let mut delivered = Vec::new();
    for a in &plan.candidates {
        if let Some(l) = push::link_value(a) {
            rp.headers.append(header::LINK, l);
            delivered.push(a.path.clone());
        }
    }
    let hinted: Vec<&str> = delivered.iter().map(String::as_str).collect();
    record_skips(&shared, &info, &plan.skipped_digest, &hinted);
    if let Some(c) = push::digest_cookie(&shared, &authority, &plan, &delivered) {
        rp.headers.append(header::SET_COOKIE, c);
    }
    wrap(
        &shared,
        info,
        Response::from_parts(rp, rb),
        true,
        plan.holdout,
    )
}

fn wrap(
    shared: &Arc<Shared>,
    info: ReqInfo,
    resp: Response<Body>,
    is_page: bool,
    holdout: bool,
) -> Response<Body> {
    let (parts, body) = resp.into_parts();
    let mut r = RespInfo::of(&parts, is_page);
    r.holdout = holdout;
    let body = RecordingBody::wrap(Arc::clone(shared), info, r, body);
    Response::from_parts(parts, body)
}
