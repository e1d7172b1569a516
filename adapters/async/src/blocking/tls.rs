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
        self.connect_within(addr, None)
    }

    /// Connects with the inner connector by `deadline`, then runs the handshake and the
    /// check within [`HANDSHAKE_TIMEOUT`] and by `deadline` too.
    fn connect_within(
        &self,
        addr: &ServerAddr,
        deadline: Option<Instant>,
    ) -> io::Result<Box<dyn Stream>> {
        let name = self.tls.server_name_for(addr);
        let name = name.map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut conn = ClientConnection::new(self.tls.config(), name).map_err(io::Error::other)?;
        let mut sock = self.inner.connect_within(addr, deadline)?;
        // The handshake and the check together, not each read: a server trickling a
        // byte per read timeout must not hold the connect forever.
        let handshake_end = Instant::now() + HANDSHAKE_TIMEOUT;
        let until = deadline.map_or(handshake_end, |d| d.min(handshake_end));
        let call_first = until < handshake_end;
        // Out of time: the connect's deadline when it ends first, else the handshake's.
        let timed_out = |e: io::Error, otherwise: fn(io::Error) -> io::Error| match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock if call_first => {
                let e = "TLS handshake timed out: not done by the connect's deadline";
                io::Error::new(io::ErrorKind::TimedOut, e)
            }
            _ => otherwise(e),
        };
        let mut bounded = Bounded {
            sock: &mut sock,
            until,
        };
        while conn.is_handshaking() {
            let done = conn.complete_io(&mut bounded);
            done.map_err(|e| timed_out(e, handshake_failed))?;
        }
        let confirmed = confirm(&mut rustls::Stream::new(&mut conn, &mut bounded));
        confirmed.map_err(|e| timed_out(e, |e| e))?;
        // The stream's users set their own timeouts; none is left from the handshake.
        sock.set_read_timeout(None)?;
        sock.set_write_timeout(None)?;
        Ok(Box::new(TlsStream(StreamOwned::new(conn, sock))))
    }
}

/// A stream whose reads and writes all end by `until`: each waits at most the time left,
/// and one started later fails with `TimedOut`.
struct Bounded<'a> {
    sock: &'a mut Box<dyn Stream>,
    until: Instant,
}

impl Bounded<'_> {
    fn left(&self) -> io::Result<Duration> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        Ok(left)
    }
}

impl Read for Bounded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.left()?;
        self.sock.set_read_timeout(Some(left))?;
        self.sock.read(buf)
    }
}

impl Write for Bounded<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.left()?;
        self.sock.set_write_timeout(Some(left))?;
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
