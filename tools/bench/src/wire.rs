//! One Gearman connection driven directly with the core codec: requests are encoded into
//! a write buffer that is flushed once per turn, responses are decoded in batches.

use bytes::BytesMut;
use gearman_core::proto::{FrameDecoder, Request, Response};
use gearman_core::Limits;
use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A connection with its read and write buffers.
pub(crate) struct Wire {
    stream: TcpStream,
    rbuf: BytesMut,
    wbuf: BytesMut,
    decoder: FrameDecoder,
}

impl Wire {
    /// Connects to `addr` with TCP_NODELAY (every turn is one write, so Nagle only adds delay).
    pub(crate) async fn connect(addr: &str) -> io::Result<Wire> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Wire {
            stream,
            rbuf: BytesMut::with_capacity(64 * 1024),
            wbuf: BytesMut::with_capacity(16 * 1024),
            decoder: FrameDecoder::new(Limits::default()),
        })
    }

    /// Queues a request for the next [`Wire::flush`].
    pub(crate) fn push(&mut self, request: &Request) {
        request.encode(&mut self.wbuf);
    }

    /// Writes everything queued.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// Flushes, then waits for at least one response and appends every complete one that
    /// has arrived to `out`.
    pub(crate) async fn turn(&mut self, out: &mut Vec<Response>) -> io::Result<()> {
        self.flush().await?;
        loop {
            while let Some(frame) = self.decoder.decode(&mut self.rbuf).map_err(invalid)? {
                out.push(Response::parse(&frame).map_err(invalid)?);
            }
            if !out.is_empty() {
                return Ok(());
            }
            if self.rbuf.capacity() - self.rbuf.len() < 4096 {
                self.rbuf.reserve(64 * 1024);
            }
            if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ));
            }
        }
    }
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}
