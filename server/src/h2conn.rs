//! One HTTP/2 connection (the `h2` crate directly, because push and 103 need it): streams, push
//! promises for learned sets, Early Hints fallback, flow-controlled bodies.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Body as _;
use http_body_util::BodyExt;
use pushwise_store::PushMark;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::body::Body;
use crate::coalesce::{Coalesce, Turns, with_turns};
use crate::conn::ConnState;
use crate::exchange::{
    RecordingBody, ReqInfo, RespInfo, canonical_target, finish, origin_headers, record_skips,
    request_authority,
};
use crate::metrics::{Limit, Protocol, PushOutcome};
use crate::origin::{OriginRequest, is_cacheable, simple};
use crate::push::{self, ViewPlan};
use crate::request_body::{self, Fault, answer_or_cut, declared_length, within_deadline};
use crate::shared::Shared;

pub(crate) async fn serve<IO>(
    shared: Arc<Shared>,
    conn: Arc<ConnState>,
    io: IO,
    cancel: CancellationToken,
    tracker: TaskTracker,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Every use of the connection's I/O happens inside this future: its polls are the turns
    // the write coalescing counts (see `coalesce`).
    let turns = Turns::default();
    let io = Coalesce::new(io, turns.clone());
    with_turns(turns, serve_coalesced(shared, conn, io, cancel, tracker)).await;
}

async fn serve_coalesced<IO>(
    shared: Arc<Shared>,
    conn: Arc<ConnState>,
    io: Coalesce<IO>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let cfg = &shared.config;
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(cfg.max_concurrent_streams.get())
        .max_header_list_size(cfg.max_header_list_size)
        // What a client may send before the server reads it: request bodies are rare here and
        // streamed to the upstream, so small windows bound what a stalled body can hold.
        .initial_window_size(256 * 1024)
        .initial_connection_window_size(1 << 20)
        .max_send_buffer_size(256 * 1024)
        // The rapid-reset defence, chosen here rather than left to the crate's default.
        .max_pending_accept_reset_streams(cfg.max_pending_resets);
    let mut h2 = match tokio::time::timeout(
        cfg.handshake_timeout,
        builder.handshake::<_, Bytes>(io),
    )
    .await
    {
        Ok(Ok(c)) => c,
        _ => return,
    };
    let active = Arc::new(AtomicUsize::new(0));
    let idle = tokio::time::sleep(cfg.idle_timeout);
    tokio::pin!(idle);
    let mut closing = false;
    // The connection's streams run on its own task, not one task each: a request answered from
    // the file cache costs no task spawn, and the answers of every stream that is ready go out
    // in one write. h2 writes what is queued whenever the connection is polled (`accept` below),
    // so the loop first accepts every request that has arrived, then runs every stream that can
    // make progress, and only then polls the connection again: one TLS record and one `writev`
    // for many responses instead of one each (`strace -c` under h2load: 20,250 `writev` calls
    // for 20,000 responses when each stream was a task).
    let mut streams = FuturesUnordered::new();
    loop {
        tokio::select! {
            biased;
            next = h2.accept() => match next {
                Some(Ok((req, mut respond))) => {
                    idle.as_mut().reset(turn_instant() + cfg.idle_timeout);
                    let Ok(permit) = Arc::clone(&shared.streams).try_acquire_owned() else {
                        shared.metrics.limit(Limit::streams);
                        respond.send_reset(h2::Reason::REFUSED_STREAM);
                        continue;
                    };
                    let max_send = h2.max_concurrent_send_streams();
                    let shared = Arc::clone(&shared);
                    let conn = Arc::clone(&conn);
                    let active = Arc::clone(&active);
                    let t2 = tracker.clone();
                    active.fetch_add(1, Ordering::Relaxed);
                    let stream = async move {
                        handle_stream(shared, conn, req, respond, max_send, t2).await;
                        active.fetch_sub(1, Ordering::Relaxed);
                        drop(permit);
                    };
                    streams.push(stream);
                }
                Some(Err(e)) => {
                    if e.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM) {
                        shared.metrics.limit(Limit::pending_resets);
                    }
                    tracing::debug!(conn = conn.id, error = %e, "h2 connection error");
                    break;
                }
                None => break,
            },
            Some(()) = streams.next(), if !streams.is_empty() => {
                // Every other stream that can finish now does, before the connection writes.
                while let Some(Some(())) = streams.next().now_or_never() {}
            }
            _ = cancel.cancelled(), if !closing => {
                closing = true;
                h2.graceful_shutdown();
            }
            _ = &mut idle, if !closing => {
                if active.load(Ordering::Relaxed) == 0 {
                    closing = true;
                    h2.graceful_shutdown();
                } else {
                    idle.as_mut().reset(turn_instant() + cfg.idle_timeout);
                }
            }
        }
    }
    // The connection is gone (its socket closes here): streams still running fail at their
    // next send and record what they sent; none is dropped unfinished.
    drop(h2);
    while streams.next().await.is_some() {}
}

/// One pushed asset, promised and waiting for its body to be sent.
struct Pushed {
    path: String,
    stream: h2::server::SendPushedResponse<Bytes>,
    parts: http::response::Parts,
    body: Body,
}

/// The request body as the origin gets it: nothing for a static site (its body is never read),
/// else streamed and bounded. `None` when the declared length is already over the limit.
fn request_body(
    shared: &Shared,
    headers: &http::HeaderMap,
    body: RecvStream,
) -> Option<(Body, Fault)> {
    let cfg = &shared.config;
    if !shared.origin.takes_bodies() || body.is_end_stream() {
        return Some((crate::body::empty(), Fault::complete()));
    }
    if declared_length(headers).is_some_and(|n| n > cfg.max_request_body as u64) {
        return None;
    }
    Some(request_body::h2(body, cfg.max_request_body))
}

async fn handle_stream(
    shared: Arc<Shared>,
    conn: Arc<ConnState>,
    req: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    max_send_streams: usize,
    tracker: TaskTracker,
) {
    conn.requests.fetch_add(1, Ordering::Relaxed);
    let (mut parts, body) = req.into_parts();
    let authority = request_authority(&parts);
    let info = ReqInfo::new(
        &shared,
        &conn,
        &parts,
        &authority,
        respond.stream_id().as_u32(),
        Protocol::h2,
    );
    conn.note(&info.path);
    let target = match canonical_target(&parts.uri) {
        Ok(t) => t,
        Err((status, msg)) => {
            let resp = simple(status, msg);
            return send(&shared, &mut respond, info, resp, None, Vec::new()).await;
        }
    };
    // The origin is asked for the canonical target; most requests already carry it (h2 sends
    // scheme and authority), and then no new URI is built.
    let uri = &parts.uri;
    let canonical = uri.scheme_str() == Some("https")
        && uri.authority().is_some_and(|a| a.as_str() == authority)
        && uri.path_and_query().is_some_and(|pq| pq.as_str() == target);
    if !canonical && let Ok(uri) = format!("https://{authority}{target}").parse() {
        parts.uri = uri;
    }
    let Some((req_body, fault)) = request_body(&shared, &parts.headers, body) else {
        shared.metrics.limit(Limit::request_body_size);
        let resp = simple(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
        return send(&shared, &mut respond, info, resp, None, Vec::new()).await;
    };
    // A path with a learned set is a page: push or hint *before* asking the origin for it, so
    // the client starts on the assets while an upstream application is still thinking.
    let plan = (parts.method == Method::GET)
        .then(|| push::plan_view(&shared, &conn, &parts.headers, &authority, &info));
    // The request's URI and headers move to the origin (nothing below reads them).
    let oreq = OriginRequest {
        method: parts.method.clone(),
        uri: std::mem::take(&mut parts.uri),
        headers: origin_headers(std::mem::take(&mut parts.headers), &conn, &shared.origin),
        body: req_body,
        client_ip: Some(conn.client_ip),
    };
    let mut announced = Announced::default();
    if let Some(plan) = plan.as_ref().filter(|p| !p.candidates.is_empty()) {
        let page = PageCtx {
            shared: &shared,
            conn: &conn,
            plan,
            authority: &authority,
        };
        // Boxed: only page views with a set come here, and every stream's future would
        // otherwise carry room for promising pushes.
        announced = Box::pin(page.announce(&mut respond, max_send_streams)).await;
    }
    // Most of a static site's answers are ready now; the rest wait (boxed: the waiting's state
    // is kilobytes, and every stream's future would carry room for it).
    let resp = match shared.origin.serve_now(&oreq) {
        Some(resp) => resp,
        None => match Box::pin(answer(&shared, &conn, &mut respond, oreq, fault)).await {
            Some(resp) => resp,
            None => return,
        },
    };
    let is_page =
        parts.method == Method::GET && resp.status() == StatusCode::OK && is_html(resp.headers());
    if is_page {
        shared.metrics.page_views.inc();
    }
    let Some(plan) = plan.filter(|_| is_page) else {
        let tasks = pushed_into_tasks(&shared, &conn, &info, announced.pushed, &tracker);
        send(&shared, &mut respond, info, resp, None, tasks).await;
        return;
    };
    let page = PageCtx {
        shared: &shared,
        conn: &conn,
        plan: &plan,
        authority: &authority,
    };
    let (resp, pushed) = page.decorate(&info, announced, resp);
    let tasks = pushed_into_tasks(&shared, &conn, &info, pushed, &tracker);
    send(&shared, &mut respond, info, resp, Some(&plan), tasks).await;
}

/// The origin's answer to `oreq`, bounded by the request body's deadline; `None` when the
/// client reset the stream first (the work is cancelled: an upstream request is dropped).
async fn answer(
    shared: &Shared,
    conn: &ConnState,
    respond: &mut SendResponse<Bytes>,
    oreq: OriginRequest,
    fault: Fault,
) -> Option<Response<Body>> {
    let timeout = shared.config.request_body_timeout;
    let resp = tokio::select! {
        resp = within_deadline(shared.origin.serve(oreq), &fault, timeout) => resp,
        reason = poll_fn(|cx| respond.poll_reset(cx)) => {
            tracing::debug!(conn = conn.id, ?reason, "stream reset by the client before its response");
            return None;
        }
    };
    Some(answer_or_cut(&shared.metrics, resp, &fault))
}

/// What went out for a page view before its response: promised pushes, and the candidates
/// announced as hints instead (indices into the plan's candidates) with their `Link` values.
#[derive(Default)]
struct Announced {
    pushed: Vec<Pushed>,
    hinted: Vec<usize>,
    links: Vec<HeaderValue>,
}

/// One page view's plan, with what announcing and decorating it needs.
struct PageCtx<'a> {
    shared: &'a Arc<Shared>,
    conn: &'a ConnState,
    plan: &'a ViewPlan,
    authority: &'a str,
}

impl PageCtx<'_> {
    /// Pushes the plan's candidates where the client and the connection allow it, and sends the
    /// rest as one 103 Early Hints response.
    async fn announce(
        &self,
        respond: &mut SendResponse<Bytes>,
        max_send_streams: usize,
    ) -> Announced {
        let (shared, conn, plan) = (self.shared, self.conn, self.plan);
        let mut out = Announced::default();
        let use_push = shared.config.push_mode == crate::config::PushMode::Push
            && !conn.push_refused()
            && conn.take_push_gate();
        if use_push {
            let refused_at = self
                .promise_all(respond, max_send_streams, &mut out.pushed)
                .await;
            if let Some(i) = refused_at {
                out.hinted.extend(i..plan.candidates.len());
            }
        } else {
            out.hinted.extend(0..plan.candidates.len());
        }
        if !out.hinted.is_empty() {
            out.links = out
                .hinted
                .iter()
                .filter_map(|&i| push::link_value(&plan.candidates[i]))
                .collect();
            let mut early = Response::new(());
            *early.status_mut() = StatusCode::EARLY_HINTS;
            for l in &out.links {
                early.headers_mut().append(header::LINK, l.clone());
            }
            if respond.send_informational(early).is_ok() {
                shared.metrics.early_hints.inc();
            }
        }
        out
    }

    /// Adds the `Link` headers and the digest cookie to the page's response, and records the
    /// assets skipped by digest or hinted on this view. Returns the response and the pushes.
    fn decorate(
        &self,
        info: &ReqInfo,
        announced: Announced,
        resp: Response<Body>,
    ) -> (Response<Body>, Vec<Pushed>) {
        let plan = self.plan;
        let (mut parts, body) = resp.into_parts();
        for l in announced.links {
            parts.headers.append(header::LINK, l);
        }
        let hinted: Vec<&str> = announced
            .hinted
            .iter()
            .map(|&i| plan.candidates[i].path.as_str())
            .collect();
        let mut delivered: Vec<String> = announced.pushed.iter().map(|p| p.path.clone()).collect();
        delivered.extend(hinted.iter().map(|p| p.to_string()));
        if let Some(cookie) = push::digest_cookie(self.shared, self.authority, plan, &delivered) {
            parts.headers.append(header::SET_COOKIE, cookie);
        }
        record_skips(self.shared, info, &plan.skipped_digest, &hinted);
        (Response::from_parts(parts, body), announced.pushed)
    }

    /// Promises the plan's candidates in order. Returns the index at which the client refused push
    /// (so the rest, and this connection from now on, fall back to hints), or `None`.
    async fn promise_all(
        &self,
        respond: &mut SendResponse<Bytes>,
        max_send_streams: usize,
        out: &mut Vec<Pushed>,
    ) -> Option<usize> {
        let (shared, conn, plan, authority) = (self.shared, self.conn, self.plan, self.authority);
        for (i, a) in plan.candidates.iter().enumerate() {
            // Never more pushes than the client lets us open at once (excess would be refused).
            if out.len() >= max_send_streams.saturating_sub(1) {
                shared.metrics.push(PushOutcome::skipped_budget);
                continue;
            }
            let url = push::absolute_url(authority, &a.path);
            let Ok(uri) = url.parse::<http::Uri>() else {
                continue;
            };
            // Only what the origin answers 200 and cacheable is pushed: ask it first.
            let resp = shared
                .origin
                .serve(OriginRequest {
                    method: Method::GET,
                    uri: uri.clone(),
                    headers: http::HeaderMap::new(),
                    body: crate::body::empty(),
                    client_ip: Some(conn.client_ip),
                })
                .await;
            let (parts, body) = resp.into_parts();
            if !is_cacheable(&parts) {
                shared.metrics.push(PushOutcome::skipped_uncacheable);
                continue;
            }
            let mut preq = Request::new(());
            *preq.method_mut() = Method::GET;
            *preq.uri_mut() = uri;
            match respond.push_request(preq) {
                Ok(stream) => {
                    shared.metrics.push(PushOutcome::promised);
                    conn.note(&a.path);
                    conn.pushes.fetch_add(1, Ordering::Relaxed);
                    out.push(Pushed {
                        path: a.path.clone(),
                        stream,
                        parts,
                        body,
                    });
                }
                Err(e) => {
                    tracing::debug!(conn = conn.id, error = %e, "client refuses push; using Early Hints");
                    shared.metrics.push_n(
                        PushOutcome::refused_by_client,
                        (plan.candidates.len() - i) as u64,
                    );
                    conn.refuse_push();
                    return Some(i);
                }
            }
        }
        None
    }
}

type PushTask = Box<dyn FnOnce() + Send>;

/// Turns promised pushes into tasks that send their responses (started after the page's headers).
fn pushed_into_tasks(
    shared: &Arc<Shared>,
    conn: &Arc<ConnState>,
    page: &ReqInfo,
    pushed: Vec<Pushed>,
    tracker: &TaskTracker,
) -> Vec<PushTask> {
    pushed
        .into_iter()
        .map(|p| {
            let shared = Arc::clone(shared);
            let tracker = tracker.clone();
            let req = ReqInfo {
                path: p.path.clone(),
                referer: pushwise_store::Referer::SameSite(page.path.clone()),
                stream_id: i64::from(p.stream.stream_id().as_u32()),
                started: std::time::Instant::now(),
                ..page.clone()
            };
            let conn_id = conn.id;
            Box::new(move || {
                tracker.spawn(send_pushed(shared, conn_id, req, p));
            }) as PushTask
        })
        .collect()
}

async fn send_pushed(shared: Arc<Shared>, conn_id: u64, req: ReqInfo, p: Pushed) {
    let Pushed {
        mut stream,
        parts,
        body,
        ..
    } = p;
    let mut info = RespInfo::of(&parts, false);
    info.push = PushMark::Pushed;
    let end = body.is_end_stream();
    let mut resp = Response::from_parts(parts, ());
    crate::date::set(resp.headers_mut());
    let mut send = match stream.send_response(resp, end) {
        Ok(s) => s,
        Err(_) => {
            info.push = PushMark::Cancelled;
            shared.metrics.push(PushOutcome::cancelled_by_client);
            finish(&shared, req, info, 0);
            return;
        }
    };
    let result = if end {
        Ok(0)
    } else {
        send_body(&shared, &mut send, body).await
    };
    match result {
        Ok(n) => {
            shared.metrics.pushed_bytes.inc_by(n);
            finish(&shared, req, info, n);
        }
        Err(sent) => {
            let reason = poll_fn(|cx| Poll::Ready(send.poll_reset(cx))).await;
            tracing::debug!(conn = conn_id, path = %req.path, ?reason, "push cancelled by client");
            shared.metrics.pushed_bytes.inc_by(sent);
            shared.metrics.push(PushOutcome::cancelled_by_client);
            info.push = PushMark::Cancelled;
            finish(&shared, req, info, sent);
        }
    }
}

/// The current turn's time as tokio's timers take it (see [`clock`](crate::clock)).
fn turn_instant() -> tokio::time::Instant {
    tokio::time::Instant::from_std(crate::clock::now().instant)
}

fn is_html(h: &http::HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/html"))
}

/// Sends a final response and its body; starts the push tasks right after the headers.
async fn send(
    shared: &Arc<Shared>,
    respond: &mut SendResponse<Bytes>,
    info: ReqInfo,
    resp: Response<Body>,
    plan: Option<&ViewPlan>,
    push_tasks: Vec<PushTask>,
) {
    let (parts, body) = resp.into_parts();
    let mut rinfo = RespInfo::of(&parts, plan.is_some());
    rinfo.holdout = plan.is_some_and(|p| p.holdout);
    let body = RecordingBody::wrap(Arc::clone(shared), info, rinfo, body);
    let end = body.is_end_stream();
    let mut head = Response::from_parts(parts, ());
    crate::date::set(head.headers_mut());
    let mut stream = match respond.send_response(head, end) {
        Ok(s) => s,
        Err(_) => return, // stream reset by the client; the body drop records it
    };
    for t in push_tasks {
        t();
    }
    if !end {
        let _ = send_body(shared, &mut stream, body).await;
    }
}

/// Sends a body with flow control. `Err(bytes_sent)` when the stream was reset or failed, or
/// when the client granted no window for the send timeout (then the stream is reset: a client
/// that stops reading must not hold the response, and its connection, for ever).
async fn send_body(
    shared: &Shared,
    stream: &mut SendStream<Bytes>,
    mut body: Body,
) -> Result<u64, u64> {
    let mut sent = 0u64;
    loop {
        let frame = match body.frame().await {
            None => {
                stream.send_data(Bytes::new(), true).map_err(|_| sent)?;
                return Ok(sent);
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "response body failed");
                stream.send_reset(h2::Reason::INTERNAL_ERROR);
                return Err(sent);
            }
            Some(Ok(f)) => f,
        };
        let Ok(mut data) = frame.into_data() else {
            continue;
        };
        let last = body.is_end_stream();
        if data.is_empty() && !last {
            continue;
        }
        loop {
            if data.is_empty() {
                stream.send_data(data, last).map_err(|_| sent)?;
                break;
            }
            stream.reserve_capacity(data.len());
            let window = poll_fn(|cx| stream.poll_capacity(cx));
            let deadline = turn_instant() + shared.config.send_timeout;
            let cap = match tokio::time::timeout_at(deadline, window).await {
                Ok(Some(Ok(c))) => c,
                Ok(_) => return Err(sent),
                Err(_) => {
                    shared.metrics.limit(Limit::send_time);
                    stream.send_reset(h2::Reason::CANCEL);
                    return Err(sent);
                }
            };
            if cap == 0 {
                continue;
            }
            let chunk = data.split_to(cap.min(data.len()));
            let n = chunk.len() as u64;
            let eos = last && data.is_empty();
            stream.send_data(chunk, eos).map_err(|_| sent)?;
            sent += n;
            if data.is_empty() {
                break;
            }
        }
        if last {
            return Ok(sent);
        }
    }
}
