//! How the blocking adapter opens streams: the [`Connector`] seam and [`StdConnector`]
//! (std's TCP and Unix sockets, each connect bounded by its deadline, name resolution
//! included).

use super::Stream;
use gearman_core::addr::ServerAddr;
use std::io::{self, ErrorKind};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
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
/// sockets from std. A TCP connect with a deadline ends by it, name resolution included:
/// a host name is resolved on a short-lived thread of its own (the system resolver,
/// `getaddrinfo`, can block for its own timeouts, often 5 s per attempt, and cannot be
/// cut short), waited for until the deadline, then each address it resolves to is tried
/// in turn. A resolution still running at the deadline fails the connect with `TimedOut`;
/// its thread ends on its own and its answer is dropped. A Unix socket's connect with a
/// deadline ends by it too (Linux otherwise holds a connect to a listener whose backlog is
/// full until it accepts). [`StdConnector::with_resolver`] resolves host names another
/// way.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdConnector;

impl StdConnector {
    /// A connector that opens the same sockets as [`StdConnector`], with the same bounds,
    /// but resolves host names with `resolver` (a service registry, a fixed table, a
    /// test's stand-in for a slow DNS server).
    pub fn with_resolver(resolver: impl Resolve) -> ResolvingConnector {
        let resolver = Arc::new(resolver);
        ResolvingConnector { resolver }
    }
}

impl Connector for StdConnector {
    fn connect(&self, addr: &ServerAddr) -> io::Result<Box<dyn Stream>> {
        self.connect_within(addr, None)
    }

    fn connect_within(
        &self,
        addr: &ServerAddr,
        deadline: Option<Instant>,
    ) -> io::Result<Box<dyn Stream>> {
        open(addr, deadline, &SYSTEM_RESOLVER)
    }
}

/// Resolves a TCP server's host name to the addresses to try, in order, for
/// [`StdConnector::with_resolver`]. Any `Fn(&str, u16) -> io::Result<Vec<SocketAddr>>`
/// closure is one.
pub trait Resolve: Send + Sync + 'static {
    /// The addresses of `host` (a name: an IP address is used as it is, never resolved)
    /// with `port`. It may block: a connect with a deadline waits for it on a thread of
    /// its own, until the deadline.
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>>;
}

impl<F> Resolve for F
where
    F: Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync + 'static,
{
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        self(host, port)
    }
}

/// [`StdConnector`] resolving host names with a [`Resolve`] of the program's own (made by
/// [`StdConnector::with_resolver`]); connects are bounded as [`StdConnector`]'s are.
#[derive(Clone)]
pub struct ResolvingConnector {
    resolver: Arc<dyn Resolve>,
}

impl std::fmt::Debug for ResolvingConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The resolver is the program's own closure: nothing to show of it.
        f.debug_struct("ResolvingConnector").finish_non_exhaustive()
    }
}

impl Connector for ResolvingConnector {
    fn connect(&self, addr: &ServerAddr) -> io::Result<Box<dyn Stream>> {
        self.connect_within(addr, None)
    }

    fn connect_within(
        &self,
        addr: &ServerAddr,
        deadline: Option<Instant>,
    ) -> io::Result<Box<dyn Stream>> {
        open(addr, deadline, &self.resolver)
    }
}

/// [`system_resolve`], shared: a connect with a deadline hands it to its resolving thread.
static SYSTEM_RESOLVER: std::sync::LazyLock<Arc<dyn Resolve>> =
    std::sync::LazyLock::new(|| Arc::new(system_resolve));

/// std's resolver (`getaddrinfo`): [`StdConnector`]'s.
fn system_resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    Ok((host, port).to_socket_addrs()?.collect())
}

/// Opens a stream to `addr` by `deadline` (if given), resolving host names with `resolver`.
fn open(
    addr: &ServerAddr,
    deadline: Option<Instant>,
    resolver: &Arc<dyn Resolve>,
) -> io::Result<Box<dyn Stream>> {
    match addr {
        ServerAddr::Tcp { host, port } => {
            let addrs = resolve_by(resolver, host, *port, deadline)?;
            let stream = tcp_connect_by(addrs, deadline)?;
            stream.set_nodelay(true)?;
            crate::keep_alive(&stream);
            Ok(Box::new(stream))
        }
        #[cfg(unix)]
        ServerAddr::Unix(path) => Ok(Box::new(unix_connect_by(path, deadline)?)),
        #[cfg(not(unix))]
        ServerAddr::Unix(_) => Err(ErrorKind::Unsupported.into()),
    }
}

/// A Unix socket connect to `path`, by `deadline` if given. Linux holds a connect to a
/// listener whose backlog is full until it accepts, or until the socket's send timeout
/// ends the wait with `EAGAIN`: set to the time left for the connect, then cleared.
#[cfg(unix)]
fn unix_connect_by(
    path: &std::path::Path,
    deadline: Option<Instant>,
) -> io::Result<std::os::unix::net::UnixStream> {
    use socket2::{Domain, SockAddr, Socket, Type};
    let Some(deadline) = deadline else {
        return std::os::unix::net::UnixStream::connect(path);
    };
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    // At least 1 ms: a zero timeout (under 1 µs, for socket2) means none at all.
    let left = time_left(deadline)?.max(Duration::from_millis(1));
    socket.set_write_timeout(Some(left))?;
    match socket.connect(&SockAddr::unix(path)?) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {
            let e = "not connected within the timeout: the server's backlog is full";
            return Err(io::Error::new(ErrorKind::TimedOut, e));
        }
        connected => connected?,
    }
    socket.set_write_timeout(None)?;
    Ok(std::os::fd::OwnedFd::from(socket).into())
}

/// The addresses of `host` with `port`: an IP address as it is; a name from `resolver`, by
/// `deadline` when there is one (on a thread of its own, left behind at the deadline:
/// std offers no way to cut a resolver short).
fn resolve_by(
    resolver: &Arc<dyn Resolve>,
    host: &str,
    port: u16,
    deadline: Option<Instant>,
) -> io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let Some(deadline) = deadline else {
        return resolver.resolve(host, port);
    };
    let left = time_left(deadline)?;
    let (tx, rx) = mpsc::sync_channel(1);
    let (resolver, name) = (Arc::clone(resolver), host.to_owned());
    let resolve = move || drop(tx.send(resolver.resolve(&name, port)));
    thread::Builder::new()
        .name("gearman-resolve".into())
        .spawn(resolve)?;
    match rx.recv_timeout(left) {
        Ok(addrs) => addrs,
        Err(RecvTimeoutError::Timeout) => {
            let e = format!("{host} not resolved within the timeout");
            Err(io::Error::new(ErrorKind::TimedOut, e))
        }
        Err(RecvTimeoutError::Disconnected) => Err(io::Error::other("the resolver panicked")),
    }
}

/// A TCP connect to each of `addrs` in turn, until one connects, all by `deadline` (if
/// given); the last address's error otherwise.
fn tcp_connect_by(addrs: Vec<SocketAddr>, deadline: Option<Instant>) -> io::Result<TcpStream> {
    let mut last = None;
    for a in addrs {
        let connected = match deadline {
            Some(deadline) => TcpStream::connect_timeout(&a, time_left(deadline)?),
            None => TcpStream::connect(a),
        };
        match connected {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        let e = "could not resolve to any addresses";
        io::Error::new(ErrorKind::InvalidInput, e)
    }))
}
