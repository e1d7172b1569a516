//! Where connections come from: listeners that yield byte streams plus who is on the
//! other end. The core task never names a socket type.
//!
//! The seam:
//!
//! ```text
//! pub(crate) trait Listener: Send + 'static {
//!     fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>>;
//!     fn local_addr(&self) -> ListenAddr;
//! }
//! pub(crate) struct Accepted { stream: Stream, peer: Peer, identity: Identity, fd: u64 }
//! pub(crate) enum Stream { Tcp(TcpStream), Unix(UnixStream), Other(Box<dyn ByteStream>) }
//! ```
//!
//! TCP ([`tcp`]) and Unix domain sockets ([`unix`]) are the listeners; [`refuse`] turns a
//! connection away with a Gearman error. This module knows sockets and streams only: it
//! reads no settings, and knows neither TLS nor the core task. [`crate::listeners`] binds
//! what the settings name and runs the accept loops, and [`crate::tls`] wraps the stream of
//! either listener, handing it on as [`Stream::Other`].
//!
//! Plain TCP and Unix streams keep their own variants so that the core task can write
//! replies straight to the socket without dynamic dispatch; any other stream is driven
//! through its `AsyncRead`/`AsyncWrite` the same way, by the core task.

pub(crate) mod refuse;
pub(crate) mod tcp;
#[cfg(unix)]
pub(crate) mod unix;

use gearman_core::acl::Identity;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncWrite};

/// A boxed, sendable future (what [`Listener::accept`] returns).
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Any byte stream the server can serve (a TLS session over TCP or a Unix socket).
pub(crate) trait ByteStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> ByteStream for T {}

/// An accepted connection's stream.
pub(crate) enum Stream {
    /// Plain TCP.
    Tcp(tokio::net::TcpStream),
    /// A Unix domain socket.
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
    /// Anything else (TLS, the HTTP listener's in-memory pipes).
    Other(Box<dyn ByteStream>),
}

impl Stream {
    /// The number the admin `workers` line shows first (gearmand shows the socket's fd).
    fn fd(&self) -> u64 {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            let fd = match self {
                Stream::Tcp(s) => s.as_raw_fd(),
                Stream::Unix(s) => s.as_raw_fd(),
                Stream::Other(_) => return 0,
            };
            u64::try_from(fd).unwrap_or(0)
        }
        #[cfg(not(unix))]
        0
    }
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Peer {
    /// A TCP peer.
    Tcp(SocketAddr),
    /// A Unix domain socket peer; `uid` is its user id as the kernel reports it
    /// (`SO_PEERCRED`), when it does.
    #[cfg_attr(not(unix), allow(dead_code))]
    Unix { uid: Option<u32> },
    /// An HTTP client whose request runs a job (`--http-port`), on an in-memory pipe.
    Http(SocketAddr),
}

impl Peer {
    /// The address column of the admin `workers` line: the IP without port (IPv4-mapped
    /// IPv6 shown as IPv4, as gearmand does), or `unix:UID` (`unix` without credentials)
    /// for a Unix socket peer. Neither contains a space, so tools splitting the line on
    /// spaces keep working; neither of the Unix forms parses as an IP address, which is
    /// what lets such a peer use admin `shutdown` (see gearman-core's admin rules).
    pub(crate) fn admin_address(&self) -> String {
        match self {
            Peer::Tcp(addr) | Peer::Http(addr) => addr.ip().to_canonical().to_string(),
            Peer::Unix { uid: Some(uid) } => format!("unix:{uid}"),
            Peer::Unix { uid: None } => "unix".into(),
        }
    }

    /// The ACL identity of a peer that has not proven anything else (no certificate):
    /// `uid:N` on a Unix socket, else anonymous.
    pub(crate) fn identity(&self) -> Identity {
        match self {
            Peer::Unix { uid: Some(uid) } => Identity::Unix { uid: *uid },
            _ => Identity::Anonymous,
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Tcp(addr) => write!(f, "{addr}"),
            Peer::Http(addr) => write!(f, "HTTP client {addr}"),
            Peer::Unix { uid: Some(uid) } => write!(f, "unix peer uid {uid}"),
            Peer::Unix { uid: None } => f.write_str("unix peer"),
        }
    }
}

/// One accepted connection, ready for the core task.
pub(crate) struct Accepted {
    /// Its byte stream.
    pub(crate) stream: Stream,
    /// Who is on the other end.
    pub(crate) peer: Peer,
    /// Who the ACL takes it for.
    pub(crate) identity: Identity,
    /// The socket's fd, for the admin `workers` line (kept across a TLS wrap).
    pub(crate) fd: u64,
}

impl Accepted {
    /// A connection whose identity is the peer's own (no TLS).
    pub(crate) fn new(stream: Stream, peer: Peer) -> Accepted {
        Accepted {
            fd: stream.fd(),
            identity: peer.identity(),
            stream,
            peer,
        }
    }
}

/// Where a listener listens, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListenAddr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix socket file.
    #[cfg_attr(not(unix), allow(dead_code))]
    Unix(PathBuf),
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "{addr}"),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A source of connections. The server runs one accept task per listener; dropping the
/// listener stops listening (a Unix listener also removes its socket file then).
pub(crate) trait Listener: Send + 'static {
    /// The next connection. Errors are the accept call's (EMFILE and the like): the accept
    /// task logs them and backs off, it does not stop.
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>>;

    /// Where it listens.
    fn local_addr(&self) -> ListenAddr;
}
