//! `--http-write-timeout`: an HTTP connection's stream that fails a write which has made no
//! progress for the timeout, so a client that never reads its reply cannot hold the
//! connection (and its slot under `--http-max-connections`) once the socket buffers fill.
//!
//! Only a write the socket cannot take counts: the clock starts when a write first
//! returns `Pending` and stops at the next byte written. A request being served (a job
//! waiting for its result) writes nothing meanwhile, so it is not timed; a client reading
//! slowly but steadily is not cut off. hyper has no write timeout of its own.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// `inner`, whose writes fail with [`io::ErrorKind::TimedOut`] after `timeout` without
/// progress.
pub(super) struct WriteStallTimeout<S> {
    inner: S,
    timeout: Duration,
    /// Armed while a write is pending: when the stall ends the connection.
    stalled_until: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteStallTimeout<S> {
    pub(super) fn new(inner: S, timeout: Duration) -> Self {
        WriteStallTimeout {
            inner,
            timeout,
            stalled_until: None,
        }
    }

    /// Keeps track of a write's `result`: a byte written disarms the clock.
    fn track_write(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match result {
            Poll::Ready(Ok(n)) if n > 0 => {
                self.stalled_until = None;
                result
            }
            Poll::Ready(_) => result,
            Poll::Pending => self.stalled(cx),
        }
    }

    /// Keeps track of a flush's or shutdown's `result`: no bytes moved, so it only counts
    /// when it waits.
    fn track_other(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<()>>,
    ) -> Poll<io::Result<()>> {
        match result {
            Poll::Ready(_) => result,
            Poll::Pending => self.stalled(cx),
        }
    }

    /// A write is waiting: arms the clock (once per stall) and fails when it has run out.
    fn stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let timeout = self.timeout;
        let deadline = self
            .stalled_until
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        // Polled so that the task is woken when it runs out, even if the socket never is.
        ready!(deadline.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no reply byte written for {timeout:?}: the client is not reading (--http-write-timeout)"),
        )))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteStallTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteStallTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.track_write(cx, result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.track_write(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        self.track_other(cx, result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.track_other(cx, result)
    }
}
