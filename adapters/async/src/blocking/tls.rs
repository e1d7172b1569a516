//! TLS for the blocking adapter (feature `tls`): rustls' own [`StreamOwned`] over any
//! [`Stream`], so read timeouts (and with them the machines' deadlines) keep working.

use super::{Connector, StdConnector, Stream};
use crate::tls::{check_reply, echo_check, handshake_failed, refused, HANDSHAKE_TIMEOUT};
use gearman_core::addr::ServerAddr;
use gearman_tls::rustls::{self, ClientConnection, StreamOwned};
use gearman_tls::ClientTls;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Opens a stream with another connector (TCP and Unix sockets by default) and runs a TLS
/// handshake over it, verifying the server with [`ClientTls`]; the connect fails with the
/// handshake's reason when the server is not trusted or refuses this client.
#[derive(Clone)]
pub struct TlsConnector {
    inner: Arc<dyn Connector>,
    tls: ClientTls,
}

impl TlsConnector {
    /// TLS over [`StdConnector`]'s TCP and Unix sockets.
    pub fn new(tls: ClientTls) -> Self {
        Self::over(Arc::new(StdConnector), tls)
    }

    /// TLS over the streams `inner` opens.
    pub fn over(inner: Arc<dyn Connector>, tls: ClientTls) -> Self {
        TlsConnector { inner, tls }
    }
}

impl Connector for TlsConnector {
    fn connect(&self, addr: &ServerAddr) -> io::Result<Box<dyn Stream>> {
        let name = self.tls.server_name_for(addr);
        let name = name.map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut conn = ClientConnection::new(self.tls.config(), name).map_err(io::Error::other)?;
        let mut sock = self.inner.connect(addr)?;
        // The handshake and the check together, not each read: a server trickling a
        // byte per read timeout must not hold the connect forever.
        let mut bounded = Bounded {
            sock: &mut sock,
            until: Instant::now() + HANDSHAKE_TIMEOUT,
        };
        while conn.is_handshaking() {
            conn.complete_io(&mut bounded).map_err(handshake_failed)?;
        }
        confirm(&mut rustls::Stream::new(&mut conn, &mut bounded))?;
        Ok(Box::new(TlsStream(StreamOwned::new(conn, sock))))
    }
}

/// A stream whose reads all end by `until`: each waits at most the time left, and one
/// started later fails with `TimedOut`.
struct Bounded<'a> {
    sock: &'a mut Box<dyn Stream>,
    until: Instant,
}

impl Read for Bounded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.sock.set_read_timeout(Some(left))?;
        self.sock.read(buf)
    }
}

impl Write for Bounded<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sock.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sock.flush()
    }
}

/// [`crate::tls::confirm`], blocking.
fn confirm(stream: &mut (impl Read + Write)) -> io::Result<()> {
    let (request, expected) = echo_check();
    let mut reply = vec![0; expected.len()];
    let mut exchange = || {
        stream.write_all(&request)?;
        stream.flush()?;
        stream.read_exact(&mut reply)
    };
    exchange().map_err(refused)?;
    check_reply(&reply, &expected)
}

/// A TLS session over a [`Stream`]; reads time out like the stream under it.
pub struct TlsStream(StreamOwned<ClientConnection, Box<dyn Stream>>);

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Stream for TlsStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.0.sock.set_read_timeout(timeout)
    }

    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.0.sock.set_write_timeout(timeout)
    }
}
