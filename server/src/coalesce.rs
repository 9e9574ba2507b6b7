//! Write coalescing under the HTTP/2 codec: the frames of every response that is ready in one
//! turn of the connection's task leave in one TLS write instead of one write each.
//!
//! Why: the `h2` crate writes a DATA frame of 256 bytes or more as its own chunk and flushes
//! before it buffers the next frame, so every small response cost a `writev` of its own, its own
//! TLS record, and the kernel's whole TCP send path (`strace -c` under h2load: 20,250 `writev`
//! calls for 20,000 responses; `perf`: ~30% of the server's CPU under `writev`). This layer copies
//! what the codec writes into one buffer and, within one poll of the connection's task (a
//! *turn*, counted by [`with_turns`]), answers the codec's flushes by waking the task instead of
//! writing: the rest of the turn (other streams answering, the codec's own flushes between
//! chained DATA frames) adds to the buffer, and the first flush of the next turn writes it all.
//!
//! Invariants: nothing written is held past the next turn (the deferral wakes the task before it
//! returns, and the codec flushes at every poll); the buffer never grows past [`MAX_BUFFER`] (a
//! write that would pass it drains the buffer first, with back-pressure from the socket);
//! shutdown writes everything first. Every use of the I/O object must happen inside the future
//! [`with_turns`] wraps, or a deferred flush would wait for a turn that never comes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What one turn may gather before it is written out regardless: four full TLS records, six
/// 10 KB pages. Every busy connection may hold this much (1,000 saturated connections: up to
/// 64 MiB). Half of it measured 8–18% fewer 10 KB pages per second (`bench/ab.sh`).
pub(crate) const MAX_BUFFER: usize = 64 * 1024;

/// What a turn's buffer starts at: a turn of a few small responses fits; a larger one doubles it.
const FIRST_CAPACITY: usize = 16 * 1024;

/// The polls of one task, counted: each is a turn.
#[derive(Clone, Default)]
pub(crate) struct Turns(Arc<AtomicU64>);

impl Turns {
    fn now(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Runs `f`, counting each of its polls as a turn of `turns` (and timing it as one turn: see
/// [`clock`](crate::clock)).
pub(crate) async fn with_turns<F: Future>(turns: Turns, f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    std::future::poll_fn(move |cx| {
        turns.0.fetch_add(1, Ordering::Relaxed);
        crate::clock::turn(|| f.as_mut().poll(cx))
    })
    .await
}

/// An I/O object whose writes are gathered and written out once per turn of its task.
pub(crate) struct Coalesce<IO> {
    inner: IO,
    buf: Vec<u8>,
    /// Bytes of `buf` already written to `inner`.
    written: usize,
    turns: Turns,
    /// The turn in which a flush was answered without writing: a flush in a later turn writes.
    deferred_in: Option<u64>,
    /// What the last written buffer held: the next one starts at that size, so a connection whose
    /// turns gather 40 KB does not copy its buffer twice every turn while doubling up to it
    /// (`perf`: 1.4% of the server's CPU on the 10 KB page), and one whose turns shrink starts
    /// small again.
    last_capacity: usize,
}

impl<IO> Coalesce<IO> {
    pub(crate) fn new(inner: IO, turns: Turns) -> Self {
        Coalesce {
            inner,
            buf: Vec::new(),
            written: 0,
            turns,
            deferred_in: None,
            last_capacity: FIRST_CAPACITY,
        }
    }

    fn pending(&self) -> usize {
        self.buf.len() - self.written
    }
}

impl<IO: AsyncWrite + Unpin> Coalesce<IO> {
    /// Writes the whole buffer to the inner I/O object.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        // Freed once written: an idle connection holds no buffer.
        self.written = 0;
        self.last_capacity = self.buf.len();
        self.buf = Vec::new();
        Poll::Ready(Ok(()))
    }

    /// Makes room for `len` more bytes, writing out what is gathered when it would pass the cap.
    fn room_for(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<()>> {
        if self.pending() > 0 && self.buf.len() + len > MAX_BUFFER {
            ready!(self.drain(cx))?;
        }
        // Grow by doubling from the first capacity, never past the cap (`reserve` alone could).
        let want = (self.buf.len() + len).min(MAX_BUFFER);
        if want > self.buf.capacity() {
            let to = want
                .max(self.buf.capacity() * 2)
                .max(self.last_capacity)
                .clamp(FIRST_CAPACITY, MAX_BUFFER);
            self.buf.reserve_exact(to - self.buf.len());
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Coalesce<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Coalesce<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.room_for(cx, data.len()))?;
        let take = data
            .len()
            .min(MAX_BUFFER.saturating_sub(this.buf.len()).max(1));
        this.buf.extend_from_slice(&data[..take]);
        Poll::Ready(Ok(take))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        ready!(this.room_for(cx, total))?;
        let mut room = MAX_BUFFER.saturating_sub(this.buf.len()).max(1);
        let mut n = 0;
        for b in bufs {
            let take = b.len().min(room);
            this.buf.extend_from_slice(&b[..take]);
            n += take;
            room -= take;
            if room == 0 {
                break;
            }
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pending() == 0 {
            this.deferred_in = None;
            return Pin::new(&mut this.inner).poll_flush(cx);
        }
        let now = this.turns.now();
        match this.deferred_in {
            // Later in the turn that deferred: the wake is already on its way.
            Some(t) if t == now => return Poll::Ready(Ok(())),
            // A turn that has not deferred yet: let the rest of it add to the buffer. The wake
            // guarantees another turn, and the codec flushes at every poll.
            None => {
                this.deferred_in = Some(now);
                cx.waker().wake_by_ref();
                return Poll::Ready(Ok(()));
            }
            Some(_) => {}
        }
        ready!(this.drain(cx))?;
        this.deferred_in = None;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.drain(cx))?;
        ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn flushes_within_a_turn_are_written_together_by_the_next_turn() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let turns = Turns::default();
        let mut c = Coalesce::new(a, turns.clone());
        c.write_all(b"one ").await.unwrap();
        c.flush().await.unwrap(); // deferred to the next turn
        c.write_all(b"two").await.unwrap();
        c.flush().await.unwrap(); // the same turn: still deferred
        assert_eq!(c.pending(), 7);
        turns.0.fetch_add(1, Ordering::Relaxed);
        c.flush().await.unwrap(); // the next turn writes both
        assert_eq!(c.pending(), 0);
        let mut got = [0u8; 7];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"one two");
    }

    #[tokio::test]
    async fn a_deferred_flush_wakes_its_task_and_the_task_s_next_poll_writes() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let turns = Turns::default();
        let c = Coalesce::new(a, turns.clone());
        // A task that writes, flushes, and waits: the data must arrive with no other event,
        // only because the deferral woke the task and its next poll flushed again.
        let task = tokio::spawn(with_turns(turns, async move {
            let mut c = c;
            c.write_all(b"hello").await.unwrap();
            let mut polls = 0;
            std::future::poll_fn(|cx| {
                polls += 1;
                let _ = Pin::new(&mut c).poll_flush(cx);
                if c.pending() == 0 {
                    return Poll::Ready(());
                }
                assert_eq!(polls, 1, "a later turn did not write");
                Poll::Pending
            })
            .await;
            (c, polls)
        }));
        let mut got = [0u8; 5];
        tokio::time::timeout(std::time::Duration::from_secs(5), b.read_exact(&mut got))
            .await
            .expect("the deferred bytes never left")
            .unwrap();
        assert_eq!(&got, b"hello");
        let (_c, polls) = task.await.unwrap();
        assert_eq!(polls, 2, "written by the turn right after the deferral");
    }

    #[tokio::test]
    async fn the_buffer_never_grows_past_its_cap_and_a_slow_reader_back_pressures() {
        // The peer reads nothing: the pipe (8 KiB) fills, and writes must stop at the cap.
        let (a, mut b) = tokio::io::duplex(8 * 1024);
        let mut c = Coalesce::new(a, Turns::default());
        let chunk = vec![7u8; 10 * 1024];
        let mut accepted = 0;
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        for _ in 0..100 {
            match Pin::new(&mut c).poll_write(&mut cx, &chunk) {
                Poll::Ready(Ok(n)) => accepted += n,
                Poll::Ready(Err(e)) => panic!("{e}"),
                Poll::Pending => break,
            }
            assert!(
                c.buf.capacity() <= MAX_BUFFER,
                "a buffer of {} bytes, over the cap",
                c.buf.capacity()
            );
        }
        assert!(
            accepted <= MAX_BUFFER + 8 * 1024,
            "accepted {accepted} bytes with nobody reading"
        );
        // Once the peer reads, every accepted byte arrives, in order.
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            b.read_to_end(&mut all).await.unwrap();
            all
        });
        c.shutdown().await.unwrap();
        drop(c);
        let all = reader.await.unwrap();
        assert_eq!(all.len(), accepted);
        assert!(all.iter().all(|&x| x == 7));
    }

    #[tokio::test]
    async fn shutdown_writes_what_a_deferred_flush_held() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let mut c = Coalesce::new(a, Turns::default());
        c.write_all(b"bye").await.unwrap();
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut c).poll_flush(&mut cx).is_ready());
        c.shutdown().await.unwrap();
        let mut all = Vec::new();
        b.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"bye");
    }
}
