//! How the blocking adapter opens streams: the [`Connector`] seam and [`StdConnector`]
//! (std's TCP and Unix sockets).

use super::Stream;
use gearman_core::addr::ServerAddr;
use std::io::{self, ErrorKind};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a blocking connect may take when nothing sets a deadline: a worker's and an
/// admin client's connects, and a client call without a timeout. A host that drops SYNs
/// would otherwise hold the connect for the kernel's timeout (about two minutes on Linux).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens streams to servers; wrap [`StdConnector`] to add TLS or anything else.
pub trait Connector: Send + Sync {
    /// Opens a stream to `addr`.
    fn connect(&self, addr: &ServerAddr) -> io::Result<Box<dyn Stream>>;

    /// Opens a stream to `addr`, giving up at `deadline` (if given) with a `TimedOut`
    /// error. The adapters connect through this; the default ignores the deadline and
    /// calls [`Connector::connect`], so a connector that can block (a TCP connect to a
    /// host that drops SYNs, a handshake) should implement it.
    fn connect_within(
        &self,
        addr: &ServerAddr,
        deadline: Option<Instant>,
    ) -> io::Result<Box<dyn Stream>> {
        let _ = deadline;
        self.connect(addr)
    }
}

impl<C: Connector + ?Sized> Connector for Arc<C> {
    fn connect(&self, addr: &ServerAddr) -> io::Result<Box<dyn Stream>> {
        (**self).connect(addr)
    }

    fn connect_within(
        &self,
        addr: &ServerAddr,
        deadline: Option<Instant>,
    ) -> io::Result<Box<dyn Stream>> {
        (**self).connect_within(addr, deadline)
    }
}

/// The time left until `deadline`, or a `TimedOut` error once it passed.
pub(crate) fn time_left(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        let e = io::Error::new(ErrorKind::TimedOut, "not connected within the timeout");
        return Err(e);
    }
    Ok(left)
}

/// TCP (without Nagle: requests are small and latency-bound; with keepalive) and Unix
/// sockets from std. A TCP connect with a deadline tries each address the host resolves
/// to in turn, all within the deadline (name resolution itself is not bounded); a Unix
/// socket's connect is not bounded.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdConnector;

impl Connector for StdConnector {
    fn connect(&self, addr: &ServerAddr) -> io::Result<Box<dyn Stream>> {
        self.connect_within(addr, None)
    }

    fn connect_within(
        &self,
        addr: &ServerAddr,
        deadline: Option<Instant>,
    ) -> io::Result<Box<dyn Stream>> {
        match addr {
            ServerAddr::Tcp { host, port } => {
                let stream = match deadline {
                    None => TcpStream::connect((host.as_str(), *port))?,
                    Some(deadline) => tcp_connect_by((host.as_str(), *port), deadline)?,
                };
                stream.set_nodelay(true)?;
                crate::keep_alive(&stream);
                Ok(Box::new(stream))
            }
            #[cfg(unix)]
            ServerAddr::Unix(path) => Ok(Box::new(std::os::unix::net::UnixStream::connect(path)?)),
            #[cfg(not(unix))]
            ServerAddr::Unix(_) => Err(ErrorKind::Unsupported.into()),
        }
    }
}
/// `TcpStream::connect` to each address `addr` resolves to, until one connects, all by
/// `deadline`; the last address's error otherwise.
fn tcp_connect_by(addr: impl ToSocketAddrs, deadline: Instant) -> io::Result<TcpStream> {
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&a, time_left(deadline)?) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        let e = "could not resolve to any addresses";
        io::Error::new(ErrorKind::InvalidInput, e)
    }))
}
