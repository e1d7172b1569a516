//! One Gearman connection driven directly with the core codec: requests are encoded into
//! a write buffer that is flushed once per turn, responses are decoded in batches. Over
//! TCP, or TLS over TCP (`--ssl`).

use bytes::BytesMut;
use gearman_core::proto::{FrameDecoder, Packet, Request, Response};
use gearman_core::Limits;
use gearman_tls::rustls::client::Resumption;
use gearman_tls::rustls::pki_types::ServerName;
use gearman_tls::ClientTls;
use std::io;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A byte stream a connection runs over: TCP or TLS.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// How connections secure themselves: TLS with these settings, each connection a full
/// handshake (no session resumption), so what is measured is the full cost.
#[derive(Clone)]
pub(crate) struct Tls {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl Tls {
    /// TLS with `settings`, verifying the server as `host`.
    pub(crate) fn new(settings: &ClientTls, host: &str) -> Result<Tls, String> {
        let name = settings.server_name(host).map_err(|e| e.to_string())?;
        let mut config = (*settings.config()).clone();
        config.resumption = Resumption::disabled();
        let connector = TlsConnector::from(Arc::new(config));
        Ok(Tls { connector, name })
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tls({:?})", self.name)
    }
}

/// A connection with its read and write buffers.
pub(crate) struct Wire {
    stream: Box<dyn Stream>,
    rbuf: BytesMut,
    wbuf: BytesMut,
    decoder: FrameDecoder,
    /// The largest packet queued on this connection, for the message when the server
    /// closes it (a packet over its size limit is the usual reason).
    largest_packet: usize,
}

impl Wire {
    /// Connects to `addr` with TCP_NODELAY (every turn is one write, so Nagle only adds
    /// delay), then runs the TLS handshake over it if `tls` says so.
    pub(crate) async fn connect(addr: &str, tls: Option<&Tls>) -> io::Result<Wire> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let stream: Box<dyn Stream> = match tls {
            None => Box::new(tcp),
            Some(tls) => Box::new(tls.connector.connect(tls.name.clone(), tcp).await?),
        };
        Ok(Wire {
            stream,
            rbuf: BytesMut::with_capacity(64 * 1024),
            wbuf: BytesMut::with_capacity(16 * 1024),
            decoder: FrameDecoder::new(Limits::default()),
            largest_packet: 0,
        })
    }

    /// Queues a request for the next [`Wire::flush`].
    pub(crate) fn push(&mut self, request: &Request) {
        let before = self.wbuf.len();
        request.encode(&mut self.wbuf);
        self.largest_packet = self.largest_packet.max(self.wbuf.len() - before);
    }

    /// Writes everything queued.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        if !self.wbuf.is_empty() {
            let written = async {
                self.stream.write_all(&self.wbuf).await?;
                // A TLS stream holds back what it has not written yet.
                self.stream.flush().await
            };
            if let Err(e) = written.await {
                return Err(match e.kind() {
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => {
                        self.closed(&format!("while the tool was writing ({e})"))
                            .await
                    }
                    _ => e,
                });
            }
            self.wbuf.clear();
        }
        Ok(())
    }

    /// The error for a connection the server closed: its ERROR packet if it sent one
    /// before closing (read for a moment), else what most likely made it close.
    async fn closed(&mut self, how: &str) -> io::Error {
        let read_for = std::time::Duration::from_millis(200);
        let _ = tokio::time::timeout(read_for, async {
            while self
                .stream
                .read_buf(&mut self.rbuf)
                .await
                .is_ok_and(|n| n > 0)
            {}
        })
        .await;
        while let Ok(Some(frame)) = self.decoder.decode(&mut self.rbuf) {
            if let Ok(Response::Error { code, text }) = Response::parse(&frame) {
                return io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    format!(
                        "the server closed the connection {how} after ERROR {} {}",
                        String::from_utf8_lossy(&code),
                        String::from_utf8_lossy(&text)
                    ),
                );
            }
        }
        io::Error::new(
            io::ErrorKind::ConnectionAborted,
            format!(
                "the server closed the connection {how}; the largest packet sent on it was \
                 {} B: if that is over the server's --max-packet-size, that is why",
                self.largest_packet
            ),
        )
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
            match self.stream.read_buf(&mut self.rbuf).await {
                Ok(0) => return Err(self.closed("(end of stream)").await),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Err(self.closed(&format!("({e})")).await)
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}
