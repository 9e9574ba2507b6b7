//! Request bodies on their way to an upstream: streamed with backpressure, bounded in bytes and in
//! time, never buffered whole.
//!
//! Why: a body buffered before it is forwarded lets one client pin memory by declaring large bodies
//! on many streams and stalling (1 GiB from 20 connections in the hardening probe). Streamed, a
//! body holds at most the flow-control window the server advertised; bounded, it ends with 413 or
//! 408 instead of waiting for ever.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;

use crate::body::Body;

/// Why a request body was cut, shared between the body (which sees it) and the stream's handler
/// (which answers for it).
#[derive(Debug, Clone, Default)]
pub struct Fault(Arc<AtomicU8>);

/// What [`Fault`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Still arriving (or not read yet).
    None = 0,
    TooLarge = 1,
    TimedOut = 2,
    /// Arrived whole: no deadline applies any more.
    Complete = 3,
}

impl Fault {
    /// The fault of a request without a body.
    pub fn complete() -> Fault {
        let f = Fault::default();
        f.set(Cut::Complete);
        f
    }

    pub fn get(&self) -> Cut {
        match self.0.load(Ordering::Relaxed) {
            1 => Cut::TooLarge,
            2 => Cut::TimedOut,
            3 => Cut::Complete,
            _ => Cut::None,
        }
    }

    fn set(&self, cut: Cut) {
        self.0.store(cut as u8, Ordering::Relaxed);
    }

    /// Marks the body late unless it completed meanwhile; true when it was late.
    fn time_out(&self) -> bool {
        self.0
            .compare_exchange(0, Cut::TimedOut as u8, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

/// Runs `serve` (the origin answering a request whose body is described by `fault`), but if the
/// body has not arrived whole within `timeout` gives up on it, whatever the origin is doing:
/// the body may not even be read yet (the request waits for an upstream connection), so only a
/// timer outside the body can hold the deadline.
pub async fn within_deadline<F>(serve: F, fault: &Fault, timeout: Duration) -> Option<F::Output>
where
    F: std::future::Future,
{
    let serve = std::pin::pin!(serve);
    if fault.get() == Cut::Complete {
        return Some(serve.await);
    }
    let mut serve = serve;
    tokio::select! {
        out = serve.as_mut() => return Some(out),
        _ = tokio::time::sleep(timeout) => {}
    }
    if fault.time_out() {
        return None;
    }
    Some(serve.await)
}

/// The response a request gets once the origin is done with it: the origin's, unless its body
/// was cut (413 when too large, 408 when too slow; the limit is counted). `resp` is `None` when
/// [`within_deadline`] gave up waiting.
pub fn answer_or_cut(
    metrics: &crate::metrics::Metrics,
    resp: Option<http::Response<Body>>,
    fault: &Fault,
) -> http::Response<Body> {
    use crate::metrics::Limit;
    use crate::origin::simple;
    use http::StatusCode;
    match (resp, fault.get()) {
        (Some(resp), Cut::None | Cut::Complete) => resp,
        (_, Cut::TooLarge) => {
            metrics.limit(Limit::request_body_size);
            simple(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n")
        }
        _ => {
            metrics.limit(Limit::request_body_time);
            simple(StatusCode::REQUEST_TIMEOUT, "request body too slow\n")
        }
    }
}

/// An HTTP/2 request stream as a body: flow-control credit goes back to the client only for
/// the data the upstream has taken, so a slow upstream slows the client instead of filling memory.
struct H2Recv(h2::RecvStream);

impl http_body::Body for H2Recv {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match ready!(self.0.poll_data(cx)) {
            Some(Ok(data)) => {
                let _ = self.0.flow_control().release_capacity(data.len());
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Some(Err(e)) => Poll::Ready(Some(Err(std::io::Error::other(e)))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }
}

/// A body that fails once it exceeds `left` bytes or is cut by its deadline, and says in its
/// [`Fault`] when it is complete or why it was cut.
struct Bounded<B> {
    inner: B,
    left: usize,
    fault: Fault,
}

impl<B> http_body::Body for Bounded<B>
where
    B: http_body::Body<Data = Bytes, Error = std::io::Error> + Unpin,
{
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        if this.fault.get() == Cut::TimedOut {
            return Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "request body too slow",
            ))));
        }
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                let n = frame.data_ref().map_or(0, Bytes::len);
                if n > this.left {
                    this.fault.set(Cut::TooLarge);
                    return Poll::Ready(Some(Err(std::io::Error::other("request body too large"))));
                }
                this.left -= n;
                if this.inner.is_end_stream() {
                    let _ = this.fault.0.compare_exchange(
                        0,
                        Cut::Complete as u8,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => Poll::Ready(Some(Err(e))),
            None => {
                let _ = this.fault.0.compare_exchange(
                    0,
                    Cut::Complete as u8,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An HTTP/2 request body bounded by `limit` bytes (its deadline: [`within_deadline`]).
pub fn h2(recv: h2::RecvStream, limit: usize) -> (Body, Fault) {
    bounded(H2Recv(recv), limit)
}

/// An HTTP/1.1 request body bounded by `limit` bytes (its deadline: [`within_deadline`]).
pub fn h1(incoming: hyper::body::Incoming, limit: usize) -> (Body, Fault) {
    bounded(incoming.map_err(std::io::Error::other), limit)
}

fn bounded<B>(inner: B, limit: usize) -> (Body, Fault)
where
    B: http_body::Body<Data = Bytes, Error = std::io::Error> + Unpin + Send + Sync + 'static,
{
    let fault = Fault::default();
    let body = Bounded {
        inner,
        left: limit,
        fault: fault.clone(),
    };
    (body.boxed(), fault)
}

/// The declared `Content-Length`, when there is a valid one.
pub fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full, StreamBody};

    #[tokio::test]
    async fn a_body_over_its_limit_fails_and_says_so() {
        let inner = Full::new(Bytes::from(vec![0u8; 1000])).map_err(|never| match never {});
        let (body, fault) = bounded(inner, 999);
        assert!(body.collect().await.is_err());
        assert_eq!(fault.get(), Cut::TooLarge);
        let inner = Full::new(Bytes::from(vec![0u8; 1000])).map_err(|never| match never {});
        let (body, fault) = bounded(inner, 1000);
        assert_eq!(body.collect().await.unwrap().to_bytes().len(), 1000);
        assert_eq!(fault.get(), Cut::Complete);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_is_cut_at_its_deadline_even_if_nobody_reads_it() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
        let (body, fault) = bounded(StreamBody::new(stream_of(rx)), 1 << 20);
        let started = tokio::time::Instant::now();
        // An origin that never reads the body (waiting for an upstream connection, say).
        let never = std::future::pending::<()>();
        let out = within_deadline(never, &fault, Duration::from_secs(30)).await;
        assert!(out.is_none());
        assert_eq!(fault.get(), Cut::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        assert!(body.collect().await.is_err(), "a cut body fails when read");
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn a_complete_body_leaves_the_origin_all_the_time_it_needs() {
        let inner = Full::new(Bytes::from_static(b"abc")).map_err(|never| match never {});
        let (body, fault) = bounded(inner, 100);
        let slow_origin = async move {
            let got = body.collect().await.unwrap().to_bytes();
            tokio::time::sleep(Duration::from_secs(60)).await;
            got
        };
        let out = within_deadline(slow_origin, &fault, Duration::from_secs(30)).await;
        assert_eq!(out.as_deref(), Some(&b"abc"[..]));
        assert_eq!(fault.get(), Cut::Complete);
    }

    /// A receiver as a stream (tokio-stream is not a dependency for this one use).
    fn stream_of<T: Send + 'static>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> Pin<Box<dyn futures_util::Stream<Item = T> + Send + Sync>> {
        Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }
}
