//! Connections, driven by the core task itself.
//!
//! There is no task per connection: each socket carries a waker of its own ([`ready`]) that
//! queues the connection for the core task when the socket turns readable or writable. The
//! core reads into its one scratch buffer and hands the bytes straight to the job server,
//! and writes replies straight to the socket ([`set`]). Only what a socket does not take at
//! once is kept, per connection, until it can be written; an idle connection holds no
//! buffer at all.

mod ready;
pub(crate) mod set;

use crate::transport::Stream;
use gearman_core::server::ConnId;
use ready::{ConnWaker, ReadyList};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Unwritten bytes of a connection past which the core keeps further output in the job
/// server (which closes the connection past its own bound) and stops reading from it: a
/// peer that sends without reading meets TCP backpressure instead of growing our memory.
pub(crate) const WRITER_HIGH_WATER: usize = 4 * 1024 * 1024;

/// What one read from a connection gave.
pub(crate) enum Read {
    /// This many bytes, at the start of the buffer.
    Data(usize),
    /// Nothing now; the connection's waker is registered for more.
    Pending,
    /// End of stream or an error: the peer is gone.
    Closed,
}

/// One connection's socket and its unwritten output.
pub(crate) struct Connection {
    stream: Stream,
    wake: Arc<ConnWaker>,
    waker: Waker,
    /// Output the socket has not taken yet; empty (and unallocated) while it keeps up.
    unsent: Vec<u8>,
    /// How much of `unsent` is written already.
    written: usize,
    /// The stream holds written bytes until flushed (TLS).
    needs_flush: bool,
    /// The core kept output back because `unsent` was past [`WRITER_HIGH_WATER`].
    pub(crate) stalled: bool,
}

impl Connection {
    pub(crate) fn new(stream: Stream, id: ConnId, ready: &Arc<ReadyList>) -> Connection {
        let (wake, waker) = ConnWaker::new(id, ready);
        Connection {
            stream,
            wake,
            waker,
            unsent: Vec::new(),
            written: 0,
            needs_flush: false,
            stalled: false,
        }
    }

    /// The core task is servicing this connection: wakes from now on queue it again.
    pub(crate) fn serviced(&self) {
        self.wake.serviced();
    }

    /// Queues the connection for another turn (it may have more input waiting).
    pub(crate) fn requeue(&self) {
        self.waker.wake_by_ref();
    }

    /// Bytes handed to this connection and not yet written.
    pub(crate) fn backlog(&self) -> usize {
        self.unsent.len() - self.written
    }

    /// Whether reading must wait until the peer reads its replies.
    pub(crate) fn reading_paused(&self) -> bool {
        self.backlog() > WRITER_HIGH_WATER || self.stalled
    }

    /// Whether everything handed to the connection has gone to the socket.
    pub(crate) fn drained(&self) -> bool {
        self.backlog() == 0 && !self.needs_flush
    }

    /// One read into `buf`.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> Read {
        let mut cx = Context::from_waker(&self.waker);
        let mut read_buf = ReadBuf::new(buf);
        match poll_read(&mut self.stream, &mut cx, &mut read_buf) {
            Poll::Pending => Read::Pending,
            Poll::Ready(Ok(())) if read_buf.filled().is_empty() => Read::Closed,
            Poll::Ready(Ok(())) => Read::Data(read_buf.filled().len()),
            Poll::Ready(Err(_)) => Read::Closed,
        }
    }

    /// Writes `data` now as far as the socket takes it and keeps the rest, after whatever
    /// is already waiting, for when it can take more. `Err`: the connection is broken.
    pub(crate) fn send(&mut self, data: &[u8]) -> io::Result<()> {
        if self.backlog() > 0 {
            self.unsent.extend_from_slice(data);
            return Ok(());
        }
        let n = write_now(&mut self.stream, &self.waker, &mut self.needs_flush, data)?;
        if let Some(rest) = data.get(n..).filter(|rest| !rest.is_empty()) {
            self.unsent.clear();
            self.written = 0;
            self.unsent.extend_from_slice(rest);
        }
        self.flush_now()
    }

    /// Writes what is waiting, as far as the socket takes it now. `Err`: broken.
    pub(crate) fn pump(&mut self) -> io::Result<()> {
        if self.backlog() > 0 {
            let waiting = self.unsent.get(self.written..).unwrap_or_default();
            self.written += write_now(
                &mut self.stream,
                &self.waker,
                &mut self.needs_flush,
                waiting,
            )?;
            if self.backlog() == 0 {
                // Give the buffer back: a connection that caught up holds none.
                self.unsent = Vec::new();
                self.written = 0;
            } else if self.written > self.unsent.len() / 2 {
                // A reader that keeps up only partly never empties the buffer: drop what
                // was written so it does not grow by everything ever sent (the move is
                // at most what was written, so it costs O(1) per byte).
                self.unsent.drain(..self.written);
                self.written = 0;
            }
        }
        self.flush_now()
    }

    fn flush_now(&mut self) -> io::Result<()> {
        if self.needs_flush {
            let mut cx = Context::from_waker(&self.waker);
            match poll_flush(&mut self.stream, &mut cx) {
                Poll::Ready(Ok(())) => self.needs_flush = false,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => {}
            }
        }
        Ok(())
    }

    /// Half-closes (or, for TLS, closes) the stream once everything is written; `Ready`
    /// when done (or broken), and the connection can be dropped.
    pub(crate) fn poll_close(&mut self) -> Poll<()> {
        if self.pump().is_err() {
            return Poll::Ready(());
        }
        if !self.drained() {
            return Poll::Pending;
        }
        let mut cx = Context::from_waker(&self.waker);
        poll_shutdown(&mut self.stream, &mut cx).map(|_| ())
    }
}

/// Writes until the socket takes no more (the waker then registered); returns how much.
fn write_now(
    stream: &mut Stream,
    waker: &Waker,
    needs_flush: &mut bool,
    mut data: &[u8],
) -> io::Result<usize> {
    let mut cx = Context::from_waker(waker);
    let mut total = 0;
    while !data.is_empty() {
        match poll_write(stream, &mut cx, data) {
            Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
            Poll::Ready(Ok(n)) => {
                total += n;
                data = data.get(n..).unwrap_or_default();
                *needs_flush = matches!(stream, Stream::Other(_));
            }
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => break,
        }
    }
    Ok(total)
}

fn poll_read(
    stream: &mut Stream,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    match stream {
        Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
        #[cfg(unix)]
        Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        Stream::Other(s) => Pin::new(s).poll_read(cx, buf),
    }
}

fn poll_write(stream: &mut Stream, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
    match stream {
        Stream::Tcp(s) => Pin::new(s).poll_write(cx, data),
        #[cfg(unix)]
        Stream::Unix(s) => Pin::new(s).poll_write(cx, data),
        Stream::Other(s) => Pin::new(s).poll_write(cx, data),
    }
}

fn poll_flush(stream: &mut Stream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    match stream {
        Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
        #[cfg(unix)]
        Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        Stream::Other(s) => Pin::new(s).poll_flush(cx),
    }
}

fn poll_shutdown(stream: &mut Stream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    match stream {
        Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
        #[cfg(unix)]
        Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        Stream::Other(s) => Pin::new(s).poll_shutdown(cx),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A peer socket that takes at most `room` more bytes, then would block.
    struct SlowPeer {
        room: Arc<Mutex<usize>>,
    }

    impl AsyncRead for SlowPeer {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    impl AsyncWrite for SlowPeer {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            let mut room = self.room.lock().unwrap();
            let n = data.len().min(*room);
            if n == 0 {
                return Poll::Pending;
            }
            *room -= n;
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// A peer that reads part of what it is sent between sends keeps a backlog for good:
    /// the buffer must hold that backlog, not everything sent since it last caught up.
    #[test]
    fn a_reader_that_partly_keeps_up_does_not_grow_the_buffer() {
        let room = Arc::new(Mutex::new(0));
        let peer = SlowPeer { room: room.clone() };
        let ready = Arc::new(ReadyList::default());
        let mut conn = Connection::new(Stream::Other(Box::new(peer)), ConnId(1), &ready);
        let chunk = vec![7u8; 64 * 1024];
        let mut most = 0;
        for _ in 0..400 {
            conn.send(&chunk).unwrap();
            // The peer reads a little less than was sent: the backlog never empties.
            *room.lock().unwrap() += 48 * 1024;
            conn.pump().unwrap();
            most = most.max(conn.unsent.len());
        }
        let backlog = conn.backlog();
        assert_eq!(
            backlog,
            400 * 16 * 1024,
            "the peer took other than what it read"
        );
        assert!(
            most <= 2 * backlog + 2 * chunk.len(),
            "buffer of {most} bytes for a backlog of {backlog} (sent {} in all)",
            400 * chunk.len()
        );
    }
}
